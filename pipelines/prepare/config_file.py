"""`--config FILE`: a YAML job config whose keys are the command line's long options; flags given on the
command line override it. The `beam:` section holds Beam pipeline options (runner, project, ...)."""
import argparse

import fsspec
import yaml

from schemas.options import ConfigError

BEAM_SECTION = "beam"


def read_config(url: str) -> dict:
    """A YAML mapping from a local path or fsspec URL; ConfigError when missing or not a mapping."""
    try:
        with fsspec.open(url, "r", encoding="utf-8") as handle:
            data = yaml.safe_load(handle)
    except FileNotFoundError:
        raise ConfigError(f"--config {url!r} does not exist.") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"--config {url!r} is not valid YAML ({exc}).".replace("\n", " ")) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"--config {url!r} must be a mapping of option names to values.")
    return data


REPEATABLE = ("input",)  # options given once per value on the command line
# Options that set one thing two ways: a command-line flag for one of them overrides the config's other.
SAME_SETTING = ({"is_labeled", "layout"}, {"image_size", "image_box"})


def config_to_argv(config: dict, parser: argparse.ArgumentParser, source: str) -> tuple[list[str], list[str]]:
    """Config mapping -> (our option tokens, Beam option tokens); ConfigError names an unknown key.

    Uses only argparse's public interface: the options are the parser's defaults, each `--dest-with-dashes`;
    an option whose default is a bool is an on/off switch (`--x` / `--no-x`)."""
    defaults = vars(parser.parse_args([]))
    defaults.pop("config", None)
    ours, beam = [], []
    for key, value in config.items():
        if key == BEAM_SECTION:
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: '{BEAM_SECTION}' must be a mapping of Beam pipeline options.")
            beam += [_beam_token(k, v) for k, v in value.items()]
            continue
        dest = str(key).replace("-", "_")
        if dest not in defaults:
            known = ", ".join(sorted(d.replace("_", "-") for d in defaults))
            raise ConfigError(f"{source}: unknown key {key!r}; known keys are {known} and '{BEAM_SECTION}'.")
        flag = "--" + dest.replace("_", "-")
        if isinstance(defaults[dest], bool):
            ours.append(flag if value else "--no-" + flag[2:])
        elif dest in REPEATABLE:
            for item in value if isinstance(value, list) else [value]:
                ours += [flag, str(item)]
        else:
            ours += [flag, ",".join(map(str, value)) if isinstance(value, list) else str(value)]
    return ours, beam


def _beam_token(key: str, value) -> str:
    if value is True:
        return f"--{key}"
    if isinstance(value, list):
        return f"--{key}={','.join(map(str, value))}"
    return f"--{key}={value}"


def merge_config(argv: list[str], parser: argparse.ArgumentParser) -> list[str]:
    """Command-line tokens -> the same with the --config file's options put first, so later flags win.
    --input given on the command line replaces the config's inputs instead of adding to them."""
    probe = argparse.ArgumentParser(add_help=False)
    probe.add_argument("--config")
    probe.add_argument("--input", action="append")
    known, _ = probe.parse_known_args(argv)
    if not known.config:
        return argv
    config = read_config(known.config)
    rest = _without_config(argv)
    given = _flags_given(rest)
    for key in list(config):
        dest = str(key).replace("-", "_")
        if dest == "input" and known.input or any(dest in same and same & given for same in SAME_SETTING):
            del config[key]
    ours, beam = config_to_argv(config, parser, known.config)
    return ours + beam + rest


def _flags_given(argv: list[str]) -> set[str]:
    """The option names (argparse dests) that command-line tokens set, `--no-x` counted as x."""
    names = {token[2:].split("=", 1)[0] for token in argv if token.startswith("--")}
    return {name.removeprefix("no-").replace("-", "_") for name in names}


def _without_config(argv: list[str]) -> list[str]:
    out, skip = [], False
    for token in argv:
        if skip:
            skip = False
        elif token == "--config":
            skip = True
        elif not token.startswith("--config="):
            out.append(token)
    return out
