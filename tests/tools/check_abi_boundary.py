#!/usr/bin/env python3
"""The plugin boundary is checked by the compiler (issue 15): a copy of include/cspine/backend_abi.h with one
entry point's signature changed must make BOTH src/model/torch_backend.cpp (the plugin) and
src/model/backend_loader.cpp (the core's loader) fail to compile, and a plugin whose definition alone differs
from the header must fail too. Uses the real compile commands of the build tree (compile_commands.json).
Usage: check_abi_boundary.py BUILD_DIR SOURCE_DIR"""
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile

build, source = sys.argv[1], sys.argv[2]
db = json.load(open(os.path.join(build, "compile_commands.json")))


def syntax_check(name, include_first=None, replace_file=None):
    entry = [e for e in db if e["file"].endswith(name)]
    if not entry:
        print(f"SKIP: {name} is not in this build (CSPINE_WITH_TORCH=OFF?)")
        sys.exit(0)
    e = entry[0]
    args = shlex.split(e["command"])
    i = args.index("-o")
    del args[i:i + 2]
    if replace_file:
        args = [replace_file if a == e["file"] else a for a in args]
    if include_first:
        args = [args[0], "-I" + include_first] + args[1:]
    r = subprocess.run(args + ["-fsyntax-only"], cwd=e["directory"], capture_output=True, text=True)
    return r.returncode, r.stderr


failures = 0
for name in ("torch_backend.cpp", "backend_loader.cpp"):
    rc, err = syntax_check(name)
    if rc != 0:
        print(f"FAIL: {name} does not compile as it is:\n{err}")
        failures += 1

with tempfile.TemporaryDirectory() as tmp:
    os.makedirs(os.path.join(tmp, "cspine"))
    for h in os.listdir(os.path.join(source, "include", "cspine")):
        shutil.copy(os.path.join(source, "include", "cspine", h), os.path.join(tmp, "cspine", h))
    abi = os.path.join(tmp, "cspine", "backend_abi.h")
    text = open(abi).read()
    old = "const cspine_input_rules* rules,\n                                            int32_t batch,"
    assert old in text, "the test's anchor in backend_abi.h moved: update check_abi_boundary.py"
    open(abi, "w").write(text.replace(old, "const cspine_input_rules* rules,\n int64_t* batch,"))
    for name in ("torch_backend.cpp", "backend_loader.cpp"):
        rc, err = syntax_check(name, include_first=tmp)
        if rc == 0:
            print(f"FAIL: {name} still compiles against a header whose segment_volume signature changed")
            failures += 1
        else:
            print(f"ok: {name} refuses the changed header: {next((l for l in err.splitlines() if 'error' in l), '')}")
    # The plugin's definition alone changed.
    plugin = open(os.path.join(source, "src", "model", "torch_backend.cpp")).read()
    old = "const cspine_input_rules* rules, int32_t batch,"
    assert old in plugin, "the test's anchor in torch_backend.cpp moved: update check_abi_boundary.py"
    bad = os.path.join(tmp, "torch_backend_changed.cpp")
    open(bad, "w").write(plugin.replace(old, "const cspine_input_rules* rules, int64_t batch,"))
    rc, err = syntax_check("torch_backend.cpp", replace_file=bad)
    if rc == 0:
        print("FAIL: a plugin definition that differs from backend_abi.h still compiles")
        failures += 1
    else:
        print("ok: a plugin definition that differs from the header does not compile")

print(f"{3 - failures if failures <= 3 else 0} passed, {failures} failed")
sys.exit(1 if failures else 0)
