"""The download of a ``source: hub`` model: what each hub failure tells the user to do, and the
success path (a pinned revision, safetensors only, a faithful checkpoint with its provenance).

No test reaches the hub. The failures go through the real ``snapshot_download`` of the
installed huggingface_hub, its HTTP client answered by a mock transport with the status codes
and ``X-Error-Code`` headers the hub sends (so the library itself turns them into its exception
classes); the success path replaces ``snapshot_download`` with a fake hub that serves the tiny
random Llama at one pinned commit, filtering files by the patterns it is passed.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest
import torch
from transformers import AutoTokenizer

from compress_recover.compress.external import _folder as external_folder
from compress_recover.compress.external_config import CheckpointConfig
from compress_recover.download.download import (HubAccessError, HubNotFoundError, HubUnreachableError,
                                                download_model)
from compress_recover.io import read_json, sha256_file
from compress_recover.modeling import load_model
from compress_recover.runtime import Runtime

CPU = Runtime(device="cpu", threads=1)
GATED = "meta-llama/Llama-3.2-1B"
PINNED = "4e20de362430cd3b72f300e6b0f18e50e7166e08"  # a 40-hex commit sha, as config.yaml asks


@pytest.fixture
def mock_hub(monkeypatch):
    """huggingface_hub online, every request answered by ``answer[0](request)``; the default
    client is restored afterwards."""
    from huggingface_hub import constants
    from huggingface_hub.utils import _http

    answer, seen = [], []

    def handler(request):
        seen.append(str(request.url))
        return answer[0](request)

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    _http.set_client_factory(lambda: httpx.Client(transport=httpx.MockTransport(handler)))
    try:
        yield answer, seen
    finally:
        _http.set_client_factory(_http.default_client_factory)


def _status(code, error_code=None, error_message=None):
    headers = {k: v for k, v in (("X-Error-Code", error_code), ("X-Error-Message", error_message)) if v}
    return lambda request: httpx.Response(code, headers=headers, request=request)


def _download(tmp_path, revision=PINNED, repo=GATED):
    out = tmp_path / "ckpt"
    download_model(name="llama", spec={"source": "hub", "id": repo, "revision": revision}, out_dir=str(out),
                   runtime=CPU)
    return out


LOGIN = r".*`hf auth login`.*HF_TOKEN"
# (hub answer, revision, error class, what the message must say)
FAILURES = {
    # a gated model, no token: 401; a token whose account has not accepted the licence: 403
    "gated-no-token": (_status(401, "GatedRepo"), "main", HubAccessError,
                       rf"model 'llama'.*'{GATED}' \(models\.llama\.id\) is a gated model.*"
                       rf"https://huggingface\.co/{GATED}, accept the licence{LOGIN}"),
    "gated-not-accepted": (_status(403, "GatedRepo"), PINNED, HubAccessError,
                           rf"'{GATED}' \(models\.llama\.id\) is a gated model.*accept the licence{LOGIN}"),
    "no-such-id": (_status(404, "RepoNotFound"), PINNED, HubNotFoundError,
                   rf"no model '{GATED}' \(models\.llama\.id, revision '{PINNED}'\).*private{LOGIN}"),
    # a private repo, no token: the hub answers 401 and hides the repo
    "private-no-token": (_status(401), "main", HubNotFoundError,
                         rf"no model '{GATED}' \(models\.llama\.id, revision 'main'\){LOGIN}"),
    "no-such-revision": (_status(404, "RevisionNotFound"), "v9.9", HubNotFoundError,
                         rf"'{GATED}' has no revision 'v9\.9' \(models\.llama\.revision\)"),
    "wrong-token": (_status(401, error_message="Invalid credentials in Authorization header"), "main",
                    HubAccessError, rf"refused hub id '{GATED}' at revision 'main' \(models\.llama\.id; HTTP 401\)"
                                    rf".*accept its licence{LOGIN}"),
    "disabled": (_status(403, error_message="Access to this resource is disabled."), "main", HubAccessError,
                 r"refused hub id .*HTTP 403"),
}


@pytest.mark.parametrize("case", sorted(FAILURES))
def test_a_hub_refusal_says_what_to_do_naming_id_revision_and_key(case, mock_hub, tmp_path):
    answer, seen = mock_hub
    reply, revision, error, message = FAILURES[case]
    answer.append(reply)
    with pytest.raises(error, match="(?s)" + message) as raised:
        _download(tmp_path, revision=revision)
    assert "unreachable" not in str(raised.value)  # the old message, whatever went wrong
    assert any(GATED in url for url in seen)  # the library did ask the (mock) hub
    assert not (tmp_path / "ckpt").exists()


@pytest.mark.parametrize("revision", [PINNED, "main"])  # a branch is looked up in the cache first
@pytest.mark.parametrize("case", ["server-error", "connection-error"])
def test_an_unreachable_hub_is_still_reported_as_unreachable(case, revision, mock_hub, tmp_path):
    answer, _ = mock_hub

    def refuse(request):
        raise httpx.ConnectError("Name or service not known", request=request)

    answer.append(_status(503) if case == "server-error" else refuse)
    with pytest.raises(HubUnreachableError, match=rf"(?s)model 'llama'.*'{GATED}' at revision '{revision}'.*"
                                                  r"unreachable or offline.*\(source: local or gguf\)"):
        _download(tmp_path, revision=revision)


def test_a_malformed_hub_id_is_named_before_any_request(mock_hub, tmp_path):
    _, seen = mock_hub
    with pytest.raises(HubNotFoundError, match=r"model 'llama': 'not/a/valid/id' \(models\.llama\.id\) at revision "
                                               r"'main' is not a valid hub id or revision"):
        _download(tmp_path, revision="main", repo="not/a/valid/id")
    assert seen == []


def test_an_external_hub_checkpoint_that_is_gated_names_its_compression_key(mock_hub, tmp_path):
    answer, _ = mock_hub
    answer.append(_status(403, "GatedRepo"))
    config = CheckpointConfig(source="hub", id=GATED, revision=PINNED)
    with pytest.raises(HubAccessError, match=rf"models\.smol\.compressions\[0\]: hub id '{GATED}' "
                                             rf"\(models\.smol\.compressions\[0\]\.id\) is a gated model"):
        external_folder(config, tmp_path, key="models.smol.compressions[0]")


# ------------------------------------------------------------------ the success path

# Files of the fake hub repo besides the tiny Llama's: none may be fetched.
DECOYS = {"pytorch_model.bin": b"pickle weights", "tokenizer.pt": b"pickle tokenizer", "README.md": b"# card",
          "flax_model.msgpack": b"flax weights"}


@pytest.fixture
def fake_hub(tiny_llama_dir, tmp_path, monkeypatch):
    """``snapshot_download`` replaced by a hub holding ``org/tiny-llama`` at commit PINNED only:
    it materialises the allowed files of that commit under ``cache_dir`` as the library lays a
    snapshot out, and returns that folder; any other id or revision raises the library's error."""
    import huggingface_hub
    from huggingface_hub.utils import filter_repo_objects, hf_raise_for_status

    repo_files = tmp_path / "hub-repo"
    shutil.copytree(tiny_llama_dir, repo_files)
    for name, data in DECOYS.items():
        (repo_files / name).write_bytes(data)
    calls = []

    def snapshot_download(*, repo_id, revision=None, cache_dir=None, allow_patterns=None, ignore_patterns=None,
                          **kwargs):
        calls.append(dict(repo_id=repo_id, revision=revision, allow_patterns=allow_patterns,
                          ignore_patterns=ignore_patterns, **kwargs))
        if repo_id != "org/tiny-llama" or revision != PINNED:
            code = "RepoNotFound" if repo_id != "org/tiny-llama" else "RevisionNotFound"
            url = f"https://huggingface.co/api/models/{repo_id}/revision/{revision}"
            hf_raise_for_status(httpx.Response(404, headers={"X-Error-Code": code},
                                               request=httpx.Request("GET", url)))
        snapshot = Path(cache_dir) / "models--org--tiny-llama" / "snapshots" / revision
        snapshot.mkdir(parents=True)
        names = sorted(p.name for p in repo_files.iterdir())
        calls[-1]["fetched"] = list(filter_repo_objects(names, allow_patterns=allow_patterns,
                                                        ignore_patterns=ignore_patterns))
        for name in calls[-1]["fetched"]:
            shutil.copy2(repo_files / name, snapshot / name)
        return str(snapshot)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    return calls


def test_a_hub_model_downloads_at_its_pinned_revision_as_safetensors_only(fake_hub, tiny_llama_dir, tmp_path):
    out = tmp_path / "ckpt"
    manifest = download_model(name="smol", spec={"source": "hub", "id": "org/tiny-llama", "revision": PINNED},
                              out_dir=str(out), runtime=CPU)
    # the call: the pinned revision, safetensors weights and tokenizer files, never pickle weights
    (call,) = fake_hub
    assert call["repo_id"] == "org/tiny-llama" and call["revision"] == PINNED
    assert sorted(call["fetched"]) == ["config.json", "generation_config.json", "model.safetensors",
                                       "tokenizer.json", "tokenizer_config.json"]  # no decoy
    assert {"*.bin", "*.pt", "*.pth", "*.pkl", "*.ckpt"} <= set(call["ignore_patterns"])
    # the written checkpoint: the tiny model's weights, its manifest saying where they came from
    assert manifest["source"] == "hub"
    assert manifest["provenance"] == {"id": "org/tiny-llama", "revision": PINNED}
    assert manifest["base_precision"] == "float32 safetensors, loaded as float32"
    assert read_json(out / "manifest.json")["provenance"] == manifest["provenance"]
    assert sorted(p.name for p in out.glob("*.safetensors")) == ["model.safetensors"]
    assert manifest["weights_sha256"] == {"model.safetensors": sha256_file(out / "model.safetensors")}
    original, _ = load_model(tiny_llama_dir, device="cpu")
    copy, tokenizer = load_model(out, device="cpu")  # checks the weights against the manifest
    assert manifest["parameters"] == sum(p.numel() for p in original.parameters())
    ours, theirs = original.state_dict(), copy.state_dict()
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert tokenizer("The river rose")["input_ids"] == AutoTokenizer.from_pretrained(tiny_llama_dir)(
        "The river rose")["input_ids"]
