"""Class folder names (``NNN.Breed_Name``) and the readable labels shown to people."""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

_NUMBERED = re.compile(r"^\d+[._-](?P<name>.+)$")


def readable_label(folder_name: str) -> str:
    """``"001.Affenpinscher"`` → ``"Affenpinscher"``; ``"003.Airedale_terrier"`` → ``"Airedale terrier"``.

    Folders without a number prefix keep their name, with underscores as spaces.
    """
    match = _NUMBERED.match(folder_name)
    name = match.group("name") if match else folder_name
    return name.replace("_", " ").strip() or folder_name


@cache
def dog_breed_folders() -> tuple[str, ...]:
    """The 133 class folders of the original dogImages dataset, in class-index order."""
    text = resources.files("kennel.ml").joinpath("dog_breeds.txt").read_text(encoding="utf-8")
    return tuple(line.strip() for line in text.splitlines() if line.strip())
