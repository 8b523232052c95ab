"""The node's stable identity: an id kept in the agent's state directory across restarts."""
from __future__ import annotations

import os
import re
import secrets
import tempfile
from pathlib import Path

ID_FILE = "node-id"
_VALID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{7,63}$")


class IdentityError(Exception):
    pass


def new_node_id() -> str:
    """16 lowercase hex characters (64 random bits)."""
    return secrets.token_hex(8)


def load(state_dir: Path) -> str | None:
    """The node id kept in `state_dir`, or None when this host never joined from there."""
    path = Path(state_dir) / ID_FILE
    if not path.exists():
        return None
    return load_or_create(state_dir)


def load_or_create(state_dir: Path) -> str:
    """Reads `<state_dir>/node-id`, or creates it (atomically) with a new id."""
    path = Path(state_dir) / ID_FILE
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return _create(path)
    except OSError as exc:
        raise IdentityError(f"cannot read the node id from {path}: {exc.strerror or exc}") from None
    if not _VALID.match(text):
        raise IdentityError(
            f"{path} holds an invalid node id {text[:80]!r}: expected 8-64 letters, digits, '.', '_' or '-'")
    return text


def _create(path: Path) -> str:
    node_id = new_node_id()
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(prefix=".node-id.", dir=path.parent)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(node_id + "\n")
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o644)
            os.link(tmp, path)   # fails if another agent created the file meanwhile
        finally:
            os.unlink(tmp)
    except FileExistsError:
        return load_or_create(path.parent)
    except OSError as exc:
        raise IdentityError(f"cannot write the node id to {path}: {exc.strerror or exc}") from None
    return node_id
