"""The driver's completion-proof plumbing: the per-program secret, the decoys, the proof pipe.

Part of the driver program (standard library only, nothing from the project): it is not
imported inside the container but joined, as text, in front of `driver.py` by
`sandbox.container` (`DRIVER_PARTS`) and run with it as one `python3 -s -P -c <text>`.

What it guards against: a solution, written by a policy that searches for any way to be
scored `passed`, that makes its process exit with status 0 without the tests having run to
completion — sys.exit / os._exit / SystemExit / an atexit hook / a signal handler / a thread,
before, inside or instead of the tests; printing something that looks like a proof (stdout
is not the proof channel); reading every fd it finds to get at the secret. How:
- per program a secret is drawn from os.urandom, here in the container (never sent to the
  host nor written into the program text, argv or environment), after the program's process
  was forked (never in its memory), and put in a pipe whose write end is then closed; the
  harness inherits the read end at a random fd number;
- N_DECOYS more pipes at random numbers hold decoy secrets (a blind fd reader trips one);
- the proof pipe (a random number too) is read only by the driver; the harness moves the
  secret there only after `exec(tests)` returned normally;
- `proof_verdict`: valid iff the proof pipe holds exactly b"pass:" + secret AND the secret
  pipe is empty AND every decoy is untouched. The driver scores `passed` only with a valid
  proof and exit status 0 (threat model and residual risk: `driver.py`).
"""
import os
import random

N_DECOYS = 14  # decoy secret pipes per program (a blind fd reader trips one)
PROOF_CAP = 256  # bytes of the proof pipe kept; the proof is 5 + 32


def draw_numbers():
    """(secret fd number, proof fd number, [decoy fd number]), fresh from os.urandom:
    distinct, in 10..249."""
    numbers = random.SystemRandom().sample(range(10, 250), 2 + N_DECOYS)
    return numbers[0], numbers[1], numbers[2:]


def fill_secret_pipes(write_ends):
    """Draw one secret per pipe from os.urandom, write it, close the write end: [secret].
    The driver calls this after forking the program's process, so that process never holds
    a secret in its memory (it can only read the pipe it was given)."""
    secrets = []
    for w in write_ends:
        secrets.append(os.urandom(16).hex().encode())
        os.write(w, secrets[-1])
        os.close(w)
    return secrets


def proof_verdict(proof, secret, secret_r, decoys):
    """(proof valid, detail). Valid: the proof pipe holds exactly b"pass:" + secret, the
    secret pipe is empty (read once, by the harness) and no decoy was touched."""
    if proof == b"tests_syntax_error":
        return False, "the tests do not compile (a dataset bug): see stderr"
    leftover = read_now(secret_r)
    touched = sum(read_now(fd) != decoy for fd, decoy in decoys)
    if touched:
        return False, f"{touched} decoy secret pipe(s) were read: the program read fds it was not given"
    if proof != b"pass:" + secret or leftover:
        return False, "no valid completion proof from the harness: the tests did not run to completion"
    return True, "every test ran to completion (harness proof verified)"


def read_now(fd):
    """What a pipe holds now (its write end is closed: never blocks)."""
    os.set_blocking(fd, False)
    try:
        return os.read(fd, 4096)
    except BlockingIOError:
        return b""
