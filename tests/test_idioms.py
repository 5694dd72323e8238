"""Everyday commands under the CLI's defaults (server preset, default seccomp, the
rules added for the program), each compared by exit status with the same command
run plainly, and real programs that used to fail there: `python -m venv` with pip in
the new venv, and CPython's own test modules in a writable work directory.

The filesystem view (a contained child's default) gives what the rest needs: a root
directory that lists without listing the host's, a private devpts for ptys, a private
/tmp whose rules are writable-means-writable, a private $HOME (git reads ~/.gitconfig)
and a private /dev/shm (multiprocessing's POSIX semaphores)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
from kernelreq import need_landlock, need_seccomp

VOLT = os.path.join(os.path.dirname(sys.executable), "volt-enforce")

IDIOMS = {
    "redirect to /dev/null": "echo hi >/dev/null",
    "redirect from /dev/null": "cat </dev/null",
    "stderr to /dev/null": "ls /nonexistent-volt 2>/dev/null; true",
    "mktemp": 'f=$(mktemp) && echo x >"$f" && rm "$f"',
    "mktemp -d": 'd=$(mktemp -d) && rmdir "$d"',
    "ln -s in the work dir": 'ln -s target "$WORK/link" && test -L "$WORK/link" && rm "$WORK/link"',
    "mkfifo in the work dir": 'mkfifo "$WORK/fifo" && test -p "$WORK/fifo" && rm "$WORK/fifo"',
    "mv between directories": ('mkdir -p "$WORK/a" "$WORK/b" && echo x >"$WORK/a/f" && '
                               'mv "$WORK/a/f" "$WORK/b/f" && test -f "$WORK/b/f"'),
    "ps": "ps >/dev/null",
    "id": "id >/dev/null",
    "here-document": "cat >/dev/null <<EOF\nhello\nEOF",
    "pipe": "echo hi | tr a-z A-Z | grep -q HI",
}


def _cli(args: list[str], cwd: str, env: dict[str, str] | None = None,
         timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([VOLT, "run", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=timeout)


@pytest.mark.parametrize("name", list(IDIOMS))
def test_everyday_idiom_exits_as_it_does_unsandboxed(name, tmp_path):
    need_landlock()
    need_seccomp()
    cmd = IDIOMS[name]
    tool = cmd.split()[0]
    if shutil.which(tool) is None and "=" not in tool:
        pytest.fail(f"{tool} is not installed: the table needs it")
    work = tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "WORK": str(work)}
    plain = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, cwd=work, env=env,
                           timeout=60)
    assert plain.returncode == 0, f"the control failed: {plain.stderr}"
    boxed = _cli(["--rw", str(work), "--", "sh", "-c", cmd], cwd=str(work), env=env)
    assert boxed.returncode == plain.returncode, boxed.stderr


def test_python_m_venv_then_pip_version_in_the_new_venv(tmp_path):
    """venv makes its lib64 -> lib symlink (MAKE_SYM), then the venv's python runs pip."""
    need_landlock()
    work = tmp_path / "work"
    work.mkdir()
    r = _cli(["--rw", str(work), "--", sys.executable, "-m", "venv", str(work / "ve")], cwd=str(work))
    assert r.returncode == 0, r.stderr
    assert os.path.islink(work / "ve" / "lib64") or not os.path.exists(work / "ve" / "lib64")
    r = _cli(["--rw", str(work), "--", str(work / "ve" / "bin" / "python"), "-m", "pip", "--version"],
             cwd=str(work))
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("pip ") and str(work / "ve") in r.stdout


#: CPython's test modules, run by the interpreter the suite runs under.
CPYTHON_TESTS = {
    "test_os": [],
    "test_tempfile": [],
    "test_shutil": [],
    "test_subprocess": [],
}
#: Modules that run (test_subprocess) or check as executable (test_shutil's which()
#: tests, where a view mounts writable directories noexec) files they wrote into
#: tempfile's directory: given the explicit --rox of the work dir that TMPDIR names
#: (a writable directory is never executable by default).
EXEC_IN_WORK = {"test_subprocess", "test_shutil"}

#: Modules that serve and connect TCP on loopback (test_os's sendfile tests): the CLI's
#: default network (none) denies TCP bind and connect, so they are given --network host
#: explicitly, as a user running a local server would be.
TCP_ON_LOOPBACK = {"test_os"}


def test_cpython_test_modules_pass_sandboxed_as_they_pass_plainly(tmp_path):
    import importlib.util

    need_landlock()
    need_seccomp()
    assert importlib.util.find_spec("test.support") is not None, (
        f"{sys.executable} has no test package: run the suite with a full CPython build")
    passed_plainly = []
    for mod, extra in CPYTHON_TESTS.items():
        procs = {}
        for mode in ("plain", "sandboxed"):  # side by side; one module after another
            work = tmp_path / mod / mode
            work.mkdir(parents=True)
            env = {**os.environ, "TMPDIR": str(work)}
            argv = [sys.executable, "-m", "test", "-q", mod, *extra]
            if mode == "sandboxed":
                rox = ["--rox", str(work)] if mod in EXEC_IN_WORK else []
                net = ["--network", "host"] if mod in TCP_ON_LOOPBACK else []
                argv = [VOLT, "run", "--rw", str(work), *rox, *net, "--", *argv]
            procs[mode] = subprocess.Popen(argv, cwd=work, env=env, text=True,
                                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        out = {mode: p.communicate(timeout=900)[0] for mode, p in procs.items()}
        if procs["plain"].returncode != 0:
            continue  # only what passes plainly is expected to pass sandboxed
        passed_plainly.append(mod)
        assert procs["sandboxed"].returncode == 0, f"{mod} fails sandboxed:\n{out['sandboxed'][-3000:]}"
    assert passed_plainly, "no module passed plainly"


def test_control_the_seeds_read_write_alone_denies_links_and_fifos(tmp_path):
    """What the CLI's writable directories add: a --config rule with the seed's READ_WRITE
    (kept as the seed defines it) still refuses ln -s and mkfifo. Without containment:
    a filesystem view adds the same rights on its own."""
    need_landlock()
    from volt_enforce.model import IsolationConfig, LandlockAccess, LandlockPolicy, LandlockRule

    work = tmp_path / "work"
    work.mkdir()
    rules = [LandlockRule(p, LandlockAccess.READ_EXEC) for p in ("/usr", "/bin", "/lib", "/lib64", "/etc")
             if os.path.exists(p)] + [LandlockRule(str(work), LandlockAccess.READ_WRITE)]
    cfg = tmp_path / "c.json"
    cfg.write_text(IsolationConfig(landlock=LandlockPolicy(rules=rules)).to_json())
    env = {**os.environ, "WORK": str(work)}
    for name in ("ln -s in the work dir", "mkfifo in the work dir"):
        r = _cli(["--no-contain", "--config", str(cfg), "--", "sh", "-c", IDIOMS[name]],
                 cwd=str(work), env=env)
        assert r.returncode != 0 and "Permission denied" in r.stderr, (name, r.stderr)
        r = _cli(["--no-contain", "--config", str(cfg), "--rw", str(work), "--", "sh", "-c",
                  IDIOMS[name]], cwd=str(work), env=env)
        assert r.returncode == 0, (name, r.stderr)


# ---- what the filesystem view gives (issue 17 item 4; issue 13's view) -------------------

VIEW_IDIOMS = {
    "ls /": "ls / >/dev/null",
    "ls /dev/shm": "ls /dev/shm >/dev/null",
    "a pty": "script -qc true /dev/null",
    "ln -s in /tmp": 'd=$(mktemp -d) && ln -s x "$d/l" && rm -r "$d"',
    "mkfifo in /tmp": 'd=$(mktemp -d) && mkfifo "$d/f" && rm -r "$d"',
    "os.openpty": "python3 -c 'import os; os.openpty()'",
}


@pytest.mark.parametrize("name", list(VIEW_IDIOMS))
def test_view_idiom_exits_as_it_does_unsandboxed(name, tmp_path):
    need_landlock()
    cmd = VIEW_IDIOMS[name]
    plain = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, timeout=60)
    assert plain.returncode == 0, f"the control failed: {plain.stderr}"
    boxed = _cli(["--", "sh", "-c", cmd], cwd=str(tmp_path))
    assert boxed.returncode == 0, boxed.stderr


def test_home_is_empty_writable_and_private(tmp_path):
    need_landlock()
    marker = f"volt-why-{os.getpid()}"
    r = _cli(["--", "sh", "-c", f'test -z "$(ls -A "$HOME")" && echo x >"$HOME/{marker}" && '
              f'cat "$HOME/{marker}"'], cwd=str(tmp_path))
    assert r.returncode == 0 and r.stdout == "x\n", r.stderr
    assert not os.path.exists(os.path.join(os.path.expanduser("~"), marker))  # not the host's


def test_dev_shm_is_private_and_posix_semaphores_work(tmp_path):
    need_landlock()
    name = f"volt-why-{os.getpid()}"
    code = ("import multiprocessing.synchronize as s, multiprocessing as mp, os; "
            "sem = mp.Semaphore(1); sem.acquire(); sem.release(); "
            f"open('/dev/shm/{name}', 'w').write('x'); print('ok')")
    r = _cli(["--", sys.executable, "-c", code], cwd=str(tmp_path))
    assert r.returncode == 0 and r.stdout == "ok\n", r.stderr
    assert not os.path.exists(f"/dev/shm/{name}")  # the host's /dev/shm is untouched


def test_multiprocessing_pool(tmp_path):
    need_landlock()
    code = ("import multiprocessing as mp\n"
            "if __name__ == '__main__':\n"
            "    with mp.Pool(2) as p: print(sum(p.map(abs, [-1, -2, -3])))\n")
    (tmp_path / "pool.py").write_text(code)
    r = _cli(["--rw", str(tmp_path), "--", sys.executable, str(tmp_path / "pool.py")],
             cwd=str(tmp_path))
    assert r.returncode == 0 and r.stdout == "6\n", r.stderr


def test_git_init_and_commit_in_the_work_dir(tmp_path):
    need_landlock()
    git = shutil.which("git")
    assert git is not None, "the table needs git"
    work = tmp_path / "work"
    work.mkdir()
    script = ("git init -q repo && cd repo && echo x > f && git add f && "
              "git -c user.name=t -c user.email=t@example.invalid commit -qm first && "
              "git log --oneline | wc -l")
    r = _cli(["--rw", str(work), "--", "sh", "-c", script], cwd=str(work))
    assert r.returncode == 0 and r.stdout.strip() == "1", r.stderr
