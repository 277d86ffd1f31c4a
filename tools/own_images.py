"""Make the six "your own images" of the stored run: real photos in the awkward shapes and modes students upload.

    python tools/own_images.py ../shared/data/tiny-imagenet-200.zip data/my_images

Each is the first training image of a Tiny ImageNet class (64x64 JPEG), turned into a kind of file that
notebook 05 and the app must read the way training reads images:
- sports_car_wide.jpg: stretched to 192x64, a wide photo;
- tabby_cat_rotated_exif.jpg: stored turned on its side, with the EXIF orientation that turns it back;
- bullfrog_transparent.png: RGBA, with a transparent border;
- golden_retriever_scan.jpg: grayscale ("L");
- freight_car.gif: a 64-colour palette image;
- lifeboat_small.jpg: shrunk to 24x24, smaller than the model's input.
The files are data made from a dataset, so they are never committed (docs/stored_outputs.md uses them).
"""

from __future__ import annotations

import argparse
import io
import zipfile
from pathlib import Path

from PIL import Image

WNIDS = {
    "sports_car": "n04285008",
    "tabby_cat": "n02123045",
    "bullfrog": "n01641577",
    "golden_retriever": "n02099601",
    "freight_car": "n03393912",
    "lifeboat": "n03662601",
}


def first_image(archive: zipfile.ZipFile, wnid: str) -> Image.Image:
    """The class's first training image, as RGB."""
    name = f"tiny-imagenet-200/train/{wnid}/images/{wnid}_0.JPEG"
    return Image.open(io.BytesIO(archive.read(name))).convert("RGB")


def make(zip_path: Path, out: Path) -> list[Path]:
    """Write the six pictures into `out` and return their paths."""
    out.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(zip_path) as archive:
        im = {key: first_image(archive, wnid) for key, wnid in WNIDS.items()}
    written = []

    def save(image: Image.Image, name: str, **kwargs) -> None:
        image.save(out / name, **kwargs)
        written.append(out / name)

    save(im["sports_car"].resize((192, 64), Image.Resampling.BICUBIC), "sports_car_wide.jpg", quality=92)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation 6: the camera was turned; a viewer rotates 90 degrees clockwise to show it
    save(im["tabby_cat"].transpose(Image.Transpose.ROTATE_90), "tabby_cat_rotated_exif.jpg", quality=92, exif=exif)
    rgba = im["bullfrog"].convert("RGBA")
    alpha = Image.new("L", rgba.size, 0)
    alpha.paste(255, (8, 8, rgba.width - 8, rgba.height - 8))
    rgba.putalpha(alpha)
    save(rgba, "bullfrog_transparent.png")
    save(im["golden_retriever"].convert("L"), "golden_retriever_scan.jpg", quality=92)
    save(im["freight_car"].quantize(colors=64), "freight_car.gif")
    save(im["lifeboat"].resize((24, 24), Image.Resampling.LANCZOS), "lifeboat_small.jpg", quality=92)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("zip", type=Path, help="tiny-imagenet-200.zip")
    parser.add_argument("out", type=Path, help="the folder to write the pictures in")
    args = parser.parse_args()
    for path in make(args.zip, args.out):
        print("wrote", path)


if __name__ == "__main__":
    main()
