"""volt_enforce: the Volt isolation model, enforced by the Linux kernel.

Landlock rules, seccomp BPF filters and cgroup limits, plus no_new_privs,
capability drops and namespaces, prepared in the parent and applied to a child
(or to this process) by a small C core.

The names below are imported on first use, so ``import volt_enforce`` costs
almost nothing and a command imports only what it needs.
"""

from __future__ import annotations

# typing is not imported: the launcher (volt_enforce._launch) pays for every import
# here before its cache look-up; type checkers take TYPE_CHECKING as true
TYPE_CHECKING = False

__version__ = "0.2.0"

#: public name -> the module that defines it
_EXPORTS = {
    "CompatibilityError": "errors",
    "EnforcementError": "errors",
    "InstallationError": "errors",
    "PolicyError": "errors",
    "StepUnavailableError": "errors",
    "VoltEnforceError": "errors",
    "CAPABILITIES": "model",
    "DOCKER_DEFAULT_CAPABILITIES": "model",
    "Compatibility": "model",
    "IsolationConfig": "model",
    "LandlockAccess": "model",
    "LandlockLogging": "model",
    "LandlockPolicy": "model",
    "LandlockRule": "model",
    "LandlockScope": "model",
    "MissingPaths": "model",
    "NetworkConfig": "model",
    "NetworkMode": "model",
    "PortForward": "model",
    "ResourceLimits": "model",
    "SeccompProfile": "model",
    "default_isolation": "model",
    "default_network_config": "model",
    "default_resource_limits": "model",
    "desktop_policy": "model",
    "parse_cpuset": "model",
    "parse_size": "model",
    "server_policy": "model",
    "Probe": "kernel",
    "landlock_abi": "kernel",
    "probe": "kernel",
    "Compiled": "compile",
    "compile_config": "compile",
    "EnforcementReport": "report",
    "LandlockStatus": "landlock",
    "Popen": "sandbox",
    "Sandbox": "sandbox",
    "apply_self": "sandbox",
    "run": "sandbox",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from .compile import Compiled, compile_config
    from .errors import (
        CompatibilityError,
        EnforcementError,
        InstallationError,
        PolicyError,
        StepUnavailableError,
        VoltEnforceError,
    )
    from .kernel import Probe, landlock_abi, probe
    from .landlock import LandlockStatus
    from .model import (
        CAPABILITIES,
        DOCKER_DEFAULT_CAPABILITIES,
        Compatibility,
        IsolationConfig,
        LandlockAccess,
        LandlockLogging,
        LandlockPolicy,
        LandlockRule,
        LandlockScope,
        MissingPaths,
        NetworkConfig,
        NetworkMode,
        PortForward,
        ResourceLimits,
        SeccompProfile,
        default_isolation,
        default_network_config,
        default_resource_limits,
        desktop_policy,
        parse_cpuset,
        parse_size,
        server_policy,
    )
    from .report import EnforcementReport
    from .sandbox import Popen, Sandbox, apply_self, run


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'volt_enforce' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # once: later lookups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
