"""Stage 2, data: the knowledge suite and the general text.

| rule | function |
|---|---|
| ``knowledge_task`` | :func:`compress_recover.data.knowledge_task.build_knowledge_task` |
| ``text`` | :func:`compress_recover.data.text.build_text` |
| ``perplexity_task`` | :func:`compress_recover.data.perplexity_task.build_perplexity_task` |

:mod:`.facts` holds the fact relations, :mod:`.leaks` the leak filter.
"""
