"""CA rotation in bootstrap mode (`swarm ca rotate --dir D`): phases, what each asks of a node,
and the files in D that record them.

No cross-signing (a CA of `swarm ca init` may sign leaves only): the move is phased instead, each
phase ending when every node holding a certificate has caught up with it.

    none   ca.pem signs everything; nodes trust ca.pem
    trust  nodes must trust both roots (old first); the old CA still signs
    sign   the new CA signs the nodes' certificates; both roots trusted; the discovery daemon
           still serves with an old-CA certificate, so join tokens naming the old CA keep working
    drop   the old root is dropped: nodes trust the new root only; the daemon serves with a
           new-CA certificate and new join tokens name the new CA

When `drop` is done the new CA replaces the old in D (the old one is kept in D/previous/) and the
rotation is over. Files in D during a rotation: next/ca.pem, next/ca-key.pem (the new CA) and
rotation.json ({"phase": …}); several discovery daemons sharing D read them, and a change is made
under an exclusive lock on D/rotation.lock after reading the phase again.

The policy (`plan`, `holder_current`, `next_phase`) is pure; the file functions below it do I/O.
"""
from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from swarmd.common import pki

NONE, TRUST, SIGN, DROP = "none", "trust", "sign", "drop"
PHASES = (NONE, TRUST, SIGN, DROP)
STATE_FILE = "rotation.json"
LOCK_FILE = "rotation.lock"
NEXT_DIR = "next"
PREVIOUS_DIR = "previous"


class RotationError(Exception):
    """A rotation that cannot start or be read; the message says why."""


@dataclass(frozen=True)
class Plan:
    """What a phase asks for, by CA: "old" or "new"."""
    leaves: str                     # who signs the nodes' certificates
    serving: str                    # who signs the daemon's own certificate (and names join tokens)
    bundle: tuple[str, ...]         # the roots nodes must trust, in order


PLANS = {
    NONE: Plan("old", "old", ("old",)),
    TRUST: Plan("old", "old", ("old", "new")),
    SIGN: Plan("new", "old", ("new", "old")),
    DROP: Plan("new", "new", ("new",)),
}


def plan(phase: str) -> Plan:
    return PLANS[phase]


@dataclass(frozen=True)
class Holder:
    """A node with an open WatchCertificate stream: who signed its certificate, what it trusts."""
    name: str
    signer: str                     # digest of the root that signed its certificate ("" if none of ours)
    bundle: frozenset[str]          # digests of the roots it trusts


def holder_current(phase: str, holder: Holder, digests: dict[str, str]) -> bool:
    """Whether `holder` has caught up with `phase`; `digests` maps "old"/"new" to digests."""
    wanted = plan(phase)
    if holder.bundle != frozenset(digests[r] for r in wanted.bundle if r in digests):
        return False
    if phase == TRUST:              # an old certificate is what the old CA still signs
        return holder.signer in digests.values()
    return holder.signer == digests.get(wanted.leaves)


def next_phase(phase: str, holders: list[Holder], digests: dict[str, str]) -> str | None:
    """The phase to move to when every holder has caught up with `phase` (after `drop`: none, the
    rotation is over); None while someone is behind, or when no rotation runs."""
    if phase == NONE or not all(holder_current(phase, h, digests) for h in holders):
        return None
    return PHASES[(PHASES.index(phase) + 1) % len(PHASES)]


def behind(phase: str, holders: list[Holder], digests: dict[str, str]) -> list[str]:
    """The names of the holders still behind `phase` (for the log and --status)."""
    return [h.name for h in holders if not holder_current(phase, h, digests)]


# -- files -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CAState:
    """D as read at one moment: the phase, both CAs (new is None outside a rotation) and the
    resulting signers and bundle."""
    phase: str
    old: pki.Issued
    new: pki.Issued | None

    def ca(self, which: str) -> pki.Issued:
        return self.new if which == "new" and self.new is not None else self.old

    @property
    def digests(self) -> dict[str, str]:
        out = {"old": pki.ca_digest(self.old.cert_pem)}
        if self.new is not None:
            out["new"] = pki.ca_digest(self.new.cert_pem)
        return out

    @property
    def leaf_signer(self) -> pki.Issued:
        return self.ca(plan(self.phase).leaves)

    @property
    def serving_signer(self) -> pki.Issued:
        return self.ca(plan(self.phase).serving)

    @property
    def bundle_pem(self) -> bytes:
        return b"".join(dict.fromkeys(self.ca(r).cert_pem for r in plan(self.phase).bundle))


def _phase_of(directory: Path) -> str:
    try:
        doc = json.loads((directory / STATE_FILE).read_text())
    except FileNotFoundError:
        return NONE
    except (OSError, ValueError) as exc:
        raise RotationError(f"unreadable {directory / STATE_FILE}: {exc}") from None
    phase = doc.get("phase") if isinstance(doc, dict) else None
    if phase not in PHASES:
        raise RotationError(f"{directory / STATE_FILE}: unknown phase {phase!r}")
    return phase


def read(directory: str | Path) -> CAState:
    """D's CA state; RotationError (or pki.PKIError) when it cannot be read."""
    directory = Path(directory)
    phase = _phase_of(directory)
    old = pki.read_ca(directory)
    new = pki.read_ca(directory / NEXT_DIR) if phase != NONE else None
    return CAState(phase, old, new)


@contextlib.contextmanager
def _locked(directory: Path):
    import fcntl
    fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _write_state(directory: Path, phase: str) -> None:
    tmp = directory / (STATE_FILE + ".new")
    tmp.write_text(json.dumps({"phase": phase}) + "\n")
    os.replace(tmp, directory / STATE_FILE)        # readers see the old phase or the new, whole


def start(directory: str | Path, common_name: str = "swarmd CA") -> CAState:
    """Makes the new CA in D/next and enters `trust`; RotationError when a rotation already runs."""
    directory = Path(directory)
    pki.read_ca(directory)              # no CA there: said before anything is written
    with _locked(directory):
        if _phase_of(directory) != NONE:
            raise RotationError(f"a CA rotation is already under way in {directory} "
                                "(`swarm ca rotate --status` shows its phase)")
        pki.read_ca(directory)
        pki.write_ca(directory / NEXT_DIR, pki.create_ca(common_name), force=True)
        _write_state(directory, TRUST)
    return read(directory)


def advance(directory: str | Path, expected: str) -> str:
    """Moves D from phase `expected` to the next one (finishing the rotation after `drop`); a no-op
    when another daemon already moved it. Returns the phase D is in afterwards."""
    directory = Path(directory)
    with _locked(directory):
        phase = _phase_of(directory)
        if phase != expected or phase == NONE:
            return phase
        following = PHASES[(PHASES.index(phase) + 1) % len(PHASES)]
        if following == NONE:
            _finish(directory)
        else:
            _write_state(directory, following)
        return following


def _finish(directory: Path) -> None:
    """The new CA becomes D's CA; the old one goes to D/previous. Each step leaves D readable:
    in `drop` only the new CA is used, whichever of the two ca.pem holds."""
    old, new = pki.read_ca(directory), pki.read_ca(directory / NEXT_DIR)
    pki.write_ca(directory / PREVIOUS_DIR, old, force=True)
    for name, data, mode in ((pki.CA_KEY, new.key_pem, 0o600), (pki.CA_CERT, new.cert_pem, 0o644)):
        tmp = directory / (name + ".new")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, directory / name)
    (directory / STATE_FILE).unlink()
    for name in (pki.CA_CERT, pki.CA_KEY):
        with contextlib.suppress(FileNotFoundError):
            (directory / NEXT_DIR / name).unlink()
    with contextlib.suppress(OSError):
        (directory / NEXT_DIR).rmdir()
