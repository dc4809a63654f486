# The helpers of rules/data.smk, rule by rule (Snakemake's linter keeps functions out of
# the files that hold rules).


# rule text


def corpus_file():
    """The user's text file (data.text.corpus: file): changing it rebuilds the text."""
    text = config["data"]["text"]
    return [text["path"]] if text["corpus"] == "file" and text.get("path") else []
