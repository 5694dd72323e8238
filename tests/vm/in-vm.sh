#!/bin/sh
# Runs inside the kernel matrix's VM (.ci/kernel-matrix starts it):
#   in-vm.sh OUT PYTHON SECONDS [PYTEST ARGS...]
# OUT is a host directory shared read-write; the tree itself is an overlay whose
# writes stay in the VM. The VM's environment is its own: set what the tests need.
out=$1 py=$2 limit=$3
shift 3
export VOLT_ENFORCE_REQUIRE_KERNEL=1 VOLT_ENFORCE_VM_KERNEL=1 PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 LANG=C.UTF-8 HOME=/root
# only the plugins the run needs (pyproject's addopts use pytest-benchmark's options):
# importing hypothesis's plugin alone takes 20 s under emulation
export PYTEST_DISABLE_PLUGIN_AUTOLOAD=1
uname -r >"$out/release"
# SIGINT lets pytest end the session and still write its report; KILL 20 s later
# its output also goes to OUT/pytest.log: without virtio-serial in the guest (7.x
# kernels here) virtme-ng cannot bring the command's output back to the host
{
    timeout -s INT -k 20 "$limit" "$py" -m pytest -p pytest_benchmark.plugin -rfEs \
        -p no:cacheprovider -m "" --junitxml="$out/junit.xml" "$@"
    echo $? >"$out/pytest.rc"
} 2>&1 | tee "$out/pytest.log"
