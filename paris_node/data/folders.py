"""Bring-your-own-data loaders: `imagefolder:PATH` and `webdataset:GLOB`.

imagefolder follows Hugging Face's convention: `metadata.jsonl` lines `{"file_name": ..., "text": ...}`
(`caption` or `prompt` also accepted) in any folder, file names relative to that folder; an image
without a metadata line may have a sidecar `name.txt`. Images are read in sorted path order.

webdataset follows img2dataset's tars: members sharing a key (the path up to the first dot of the
base name) form one sample; the image is `jpg|jpeg|png|webp`, the caption `txt` (or `json`'s
"caption"). Tars are streamed, never extracted. Stray members, samples without an image or a
caption, undecodable images and a truncated tar tail are skipped and counted.
"""

from __future__ import annotations

import glob
import json
import re
import tarfile
from collections.abc import Iterator
from pathlib import Path

from paris_node.data.dataset_base import ImageCaptionDataset, Item, resolve_path
from paris_node.data.images import IMAGE_SUFFIXES, BadImage, load_image
from paris_node.errors import UsageError

CAPTION_KEYS = ("text", "caption", "prompt")
TAR_IMAGE_EXTS = ("jpg", "jpeg", "png", "webp")


def _caption_of(row: dict) -> str | None:
    for key in CAPTION_KEYS:
        value = row.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


class ImageFolderDataset(ImageCaptionDataset):
    def __init__(self, path: str, resolution: int, center_crop: bool = True) -> None:
        super().__init__(f"imagefolder:{path}", resolution, center_crop)
        root = resolve_path(path)
        if not root.is_dir():
            raise UsageError(f"imagefolder:{path}: not a directory; point it at the folder holding the images")
        self.root = root
        self.captions = self._read_metadata(root)
        self.files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not self.files:
            raise UsageError(f"imagefolder:{path} holds no images ({', '.join(IMAGE_SUFFIXES)})")

    @staticmethod
    def _read_metadata(root: Path) -> dict[Path, str]:
        captions: dict[Path, str] = {}
        for meta in sorted(root.rglob("metadata.jsonl")):
            for lineno, line in enumerate(meta.read_text(encoding="utf-8").splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    raise UsageError(f"{meta}:{lineno}: not a JSON line ({e.msg}); fix or remove that line") from None
                if not isinstance(row, dict) or not isinstance(row.get("file_name"), str):
                    raise UsageError(f'{meta}:{lineno}: each line needs a "file_name" string')
                caption = _caption_of(row)
                if caption is not None:
                    captions[(meta.parent / row["file_name"]).resolve()] = caption
        return captions

    def __len__(self) -> int:
        return len(self.files)

    def caption_for(self, file: Path) -> str | None:
        caption = self.captions.get(file.resolve())
        if caption is None:
            sidecar = file.with_suffix(".txt")
            if sidecar.is_file():
                caption = sidecar.read_text(encoding="utf-8", errors="replace").strip() or None
        return caption

    def __iter__(self) -> Iterator[Item]:
        for file in self.files:
            caption = self.caption_for(file)
            if caption is None:
                self.skip("no caption", str(file))
                continue
            try:
                yield load_image(file, self.resolution, self.center_crop), caption
            except BadImage as e:
                self.skip("unreadable image", str(e))


def expand_braces(pattern: str) -> list[str]:
    """`shard-{000..009}.tar` -> the ten names (img2dataset / webdataset notation), then glob each."""
    m = re.search(r"\{(\d+)\.\.(\d+)\}", pattern)
    if not m:
        return [pattern]
    lo, hi = m.group(1), m.group(2)
    width = len(lo) if lo.startswith("0") else 0
    out = []
    for i in range(int(lo), int(hi) + 1):
        out.extend(expand_braces(pattern[: m.start()] + str(i).zfill(width) + pattern[m.end() :]))
    return out


def _split_key(name: str) -> tuple[str, str]:
    folder, _, base = name.rpartition("/")
    stem, dot, ext = base.partition(".")
    return (f"{folder}/{stem}" if folder else stem), (ext.lower() if dot else "")


class WebDataset(ImageCaptionDataset):
    def __init__(self, pattern: str, resolution: int, center_crop: bool = True) -> None:
        super().__init__(f"webdataset:{pattern}", resolution, center_crop)
        files: list[str] = []
        for part in expand_braces(str(Path(pattern).expanduser())):
            files.extend(sorted(glob.glob(part)) if glob.has_magic(part) else [part])
        missing = [f for f in files if not Path(f).is_file()]
        if missing:
            raise UsageError(f"webdataset:{pattern}: {missing[0]} does not exist; check the glob or brace range")
        if not files:
            raise UsageError(f"webdataset:{pattern} matches no tar files")
        self.tars = files

    def _samples(self, tar_path: str) -> Iterator[tuple[str, dict[str, bytes]]]:
        key, parts = None, {}
        try:
            with tarfile.open(tar_path, "r|*") as tar:
                for member in tar:
                    if not member.isfile():
                        continue
                    k, ext = _split_key(member.name)
                    if k != key:
                        if key is not None:
                            yield key, parts
                        key, parts = k, {}
                    f = tar.extractfile(member)
                    parts[ext] = f.read() if f is not None else b""
        except (tarfile.TarError, EOFError, OSError) as e:
            # The sample being read when the tar broke may be incomplete: drop it with the tail.
            self.skip("truncated or corrupt tar", f"{tar_path}: {e}")
            return
        if key is not None:
            yield key, parts

    def __iter__(self) -> Iterator[Item]:
        for tar_path in self.tars:
            for key, parts in self._samples(tar_path):
                image = next((parts[e] for e in TAR_IMAGE_EXTS if e in parts), None)
                caption = parts["txt"].decode("utf-8", errors="replace").strip() if "txt" in parts else None
                if caption is None and "json" in parts:
                    try:
                        row = json.loads(parts["json"])
                        caption = _caption_of(row) if isinstance(row, dict) else None
                    except (json.JSONDecodeError, UnicodeDecodeError):
                        caption = None
                if image is None:
                    self.skip("member without an image", f"{tar_path}:{key}")
                    continue
                if not caption:
                    self.skip("no caption", f"{tar_path}:{key}")
                    continue
                try:
                    yield load_image(image, self.resolution, self.center_crop), caption
                except BadImage as e:
                    self.skip("unreadable image", f"{tar_path}:{key}: {e}")
