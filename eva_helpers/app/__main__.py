"""The app's command line: serve a model.pt on localhost, or export it as a Hugging Face Space folder.

python -m eva_helpers.app --model outputs/model.pt [--data_dir data] [--port 7860] [--device auto] [--share]
python -m eva_helpers.app export --model outputs/model.pt --out outputs/space/
"""

from __future__ import annotations

import argparse
import sys


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="outputs/model.pt", help="the model.pt that training wrote "
                        "(default: outputs/model.pt)")  # fmt: skip
    parser.add_argument("--data_dir", default=None, help="the folder holding the model's data, for the held-out "
                        "split's mistakes and the examples (default: where model.pt says it was)")  # fmt: skip
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)")


def parse(argv: list[str]) -> tuple[str, argparse.Namespace]:
    """('serve' or 'export', the parsed options)."""
    if argv[:1] == ["export"]:
        parser = argparse.ArgumentParser(
            prog="python -m eva_helpers.app export",
            description="Write a folder that runs on its own as a Hugging Face Space.",
        )
        _common(parser)
        parser.add_argument("--out", required=True, help="the Space folder to write, e.g. outputs/space/")
        return "export", parser.parse_args(argv[1:])
    parser = argparse.ArgumentParser(
        prog="python -m eva_helpers.app",
        description="Serve the trained model in a Gradio app on localhost (top classes, Grad-CAM, mistakes). "
        "`python -m eva_helpers.app export --help` tells how to export it as a Space.",
    )
    _common(parser)
    parser.add_argument("--port", type=int, default=None, help="the port (default: 7860, or the next free one)")
    parser.add_argument("--threads", type=int, default=None, help="torch's CPU threads (default: the container's "
                        "CPU quota where it has one, as on a Space, else 1: fastest with visitors queued)")  # fmt: skip
    parser.add_argument("--share", action="store_true", help="also serve it through a public gradio.live link: "
                        "this makes the app public, reachable by anyone with the link for 72 hours")  # fmt: skip
    return "serve", parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; a model or data that cannot be used stops it with the file named."""
    command, args = parse(sys.argv[1:] if argv is None else argv)
    from .local import load_local  # imported after parsing, so --help is instant

    try:
        app = load_local(model_path=args.model, data_dir=args.data_dir, device=args.device)
    except (ValueError, FileNotFoundError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if command == "export":
        from .export import export_space

        folder = export_space(app=app, out=args.out)
        print(f"wrote the Space to {folder}; see {folder / 'README.md'} for how to push it", flush=True)
        return 0
    from .ui import app_threads, build_ui, serve

    serve(demo=build_ui(app=app), port=args.port, share=args.share, threads=args.threads or app_threads())
    return 0


if __name__ == "__main__":
    sys.exit(main())
