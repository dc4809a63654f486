"""Stage 1, download: a model entry of config.yaml -> a plain safetensors checkpoint.

Rule ``download`` runs ``workflow_scripts/download.py`` ->
:func:`compress_recover.download.download.download_model`.
"""
