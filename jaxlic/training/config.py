"""Config helpers (big_vision style): argument parsing for get_config and loading config files."""
import ml_collections


def parse_arg(arg, lazy=False, **spec):
    """Parses ``"lmbda=0.013,runlocal"`` into a ConfigDict with the types of ``spec``'s defaults.

    A bare name sets a boolean to True. Unknown names are an error unless ``lazy``.
    """
    out = ml_collections.ConfigDict(dict(spec))
    for item in filter(None, (arg or "").split(",")):
        name, eq, value = item.partition("=")
        name = name.strip()
        if name not in spec and not lazy:
            raise ValueError(f"unknown config argument {name!r}; known: {sorted(spec)}")
        default = spec.get(name)
        if not eq:
            out[name] = True
        elif isinstance(default, bool):
            out[name] = value.lower() in ("1", "true", "yes")
        elif default is None:
            out[name] = value
        else:
            out[name] = type(default)(value)
    return out


def load_config(spec: str) -> ml_collections.ConfigDict:
    """``path/to/config.py[:arg]`` -> ``get_config(arg)``, as ``--config`` takes it (ml_collections config_flags)."""
    import importlib.util
    import os
    path, _, arg = spec.partition(":")
    if not os.path.exists(path):
        raise ValueError(f"config file not found: {path}")
    module_spec = importlib.util.spec_from_file_location(os.path.splitext(os.path.basename(path))[0], path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.get_config(arg or None)
