"""`make install` (meson install): the binary, a systemd unit that
systemd-analyze accepts without a warning, its sysusers.d user and an
example config that `meridian check` accepts. Installed into a directory
of the test's own (--destdir); nothing is installed on the machine."""
import os
import subprocess

import meridian_test as mt

BUILD = os.path.dirname(os.path.abspath(mt.BIN))
PREFIX = "/usr/local"  # meson's default; `make install` keeps it


def _install(dest):
    r = subprocess.run(["meson", "install", "-C", BUILD, "--destdir",
                        str(dest), "--no-rebuild", "--quiet"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    files = {}
    for d, _, names in os.walk(dest):
        for n in names:
            p = os.path.join(d, n)
            files[os.path.relpath(p, dest)] = p
    return files


def test_install_tree(tmp_path):
    dest = tmp_path / "root"
    files = _install(dest)
    want = ["usr/local/bin/meridian",
            "usr/local/lib/systemd/system/meridian.service",
            "usr/local/lib/sysusers.d/meridian.conf",
            "usr/local/share/doc/meridian/meridian.example.yaml",
            "usr/local/share/doc/meridian/README.md"]
    for w in want:
        assert w in files, (w, sorted(files))
    binary = files["usr/local/bin/meridian"]
    assert os.access(binary, os.X_OK)

    # The example config: valid once its one secret is in the
    # environment, and a clear error naming it when it is not.
    example = files["usr/local/share/doc/meridian/meridian.example.yaml"]
    env = {"PATH": "/usr/bin:/bin", "MERIDIAN_TOKEN": "t" * 32}
    r = subprocess.run([binary, "check", "-c", example], capture_output=True,
                       text=True, timeout=mt.WAIT, env=env)
    assert r.returncode == 0 and r.stdout.startswith("ok: "), r
    r = subprocess.run([binary, "check", "-c", example], capture_output=True,
                       text=True, timeout=mt.WAIT, env={"PATH": "/usr/bin"})
    assert r.returncode == 1 and "MERIDIAN_TOKEN" in r.stderr, r

    # The unit: every key known to this systemd, every value parsed, the
    # commands present (pointed at the copy in dest).
    unit = open(files["usr/local/lib/systemd/system/meridian.service"]).read()
    assert "ExecStart=%s/bin/meridian edge -c /etc/meridian/meridian.yaml" \
        % PREFIX in unit, unit
    assert "@" not in unit.replace("@system-service", "").replace(
        "@privileged", ""), "unsubstituted template variable"
    local = tmp_path / "meridian.service"
    local.write_text(unit.replace(PREFIX + "/bin/",
                                  str(dest) + PREFIX + "/bin/"))
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", str(local)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and not r.stdout.strip() and \
        not r.stderr.strip(), r

    # The user it runs as.
    (tmp_path / "sysroot" / "etc").mkdir(parents=True)
    r = subprocess.run(["systemd-sysusers", "--dry-run",
                        "--root=%s" % (tmp_path / "sysroot"),
                        files["usr/local/lib/sysusers.d/meridian.conf"]],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r
    assert "Creating user 'meridian'" in r.stdout + r.stderr, r
