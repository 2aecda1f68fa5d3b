"""Convert an authors' released IntegralAction checkpoint into a project checkpoint.

    python -m tools.import_official IN.pth OUT.pt --dataset kinetics50|ntu [--class-names FILE]

Released checkpoints are ``{'network': state_dict, ...}`` saved from a DataParallel model. They are read
with ``torch.load(weights_only=True)``; a file that needs full unpickling is refused unless
``--trust-pickle`` is given (only for files whose origin you trust: unpickling can run code).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from core.checkpoint import save_checkpoint
from core.cliflags import make_parser, parse_or_exit
from core.errors import UserError, one_line, report
from core.labels import KINETICS50, NTU60
from core.model import build_model
from core.official import OfficialCheckpointError, convert_official_state_dict, official_config_overrides, unwrap_official

DATASETS = {"kinetics50": ("released_kinetics50", KINETICS50), "ntu": ("released_ntu", NTU60)}


def import_official(src: str | Path, dst: str | Path, dataset: str, class_names: list[str] | None = None,
                    trust_pickle: bool = False) -> Path:
    preset, default_names = DATASETS[dataset]
    src = Path(src)
    if not src.is_file():
        raise OfficialCheckpointError(f"input checkpoint not found: {src}")
    try:
        raw = torch.load(src, map_location="cpu", weights_only=not trust_pickle)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        hint = "" if trust_pickle else " (if you trust its origin, retry with --trust-pickle)"
        raise OfficialCheckpointError(f"cannot read {src}: {first}{hint}") from None
    state_dict = unwrap_official(raw)
    overrides = official_config_overrides(state_dict)
    names = list(class_names) if class_names is not None else list(default_names)
    if len(names) != overrides.get("num_classes", len(names)):
        raise OfficialCheckpointError(
            f"{src} has {overrides['num_classes']} classes but {len(names)} class names were given")
    model = build_model(preset, class_names=names, **overrides)
    converted, dropped = convert_official_state_dict(state_dict, model.config)
    try:
        model.load_state_dict(converted, strict=True)
    except RuntimeError as exc:
        raise OfficialCheckpointError(f"{src} does not match the {preset} preset: {one_line(exc)}") from None
    extra = {"source": str(src.name), "imported_from": "mks0601/IntegralAction_RELEASE", "dataset": dataset,
             "dropped_unused_keys": dropped,
             "class_order": "from --class-names" if class_names is not None else "core.labels default"}
    return save_checkpoint(dst, model, names, extra=extra)


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser(prog="python -m tools.import_official", description=__doc__)
    parser.add_argument("src", help="released checkpoint (.pth)")
    parser.add_argument("dst", help="project checkpoint to write (.pt)")
    parser.add_argument("--dataset", required=True, choices=sorted(DATASETS))
    parser.add_argument("--class-names", help="text file, one class name per line, in the checkpoint's label order")
    parser.add_argument("--trust-pickle", action="store_true",
                        help="allow full unpickling of SRC (runs code from the file; trusted sources only)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = parse_or_exit(build_parser(), argv)
    try:
        names = None
        if args.class_names:
            path = Path(args.class_names)
            if not path.is_file():
                raise OfficialCheckpointError(f"class-name file not found: {path}")
            names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
        out = import_official(args.src, args.dst, args.dataset, names, args.trust_pickle)
    except UserError as exc:
        report("import_official", exc)
        return exc.code
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
