"""The text embedded for a pin.

It lives beside the pin event it renders, below both of its users: the parse stage of
ingest (`streams.parse_stage`) and the training data of the encoder (`encoder.engagement`)
import it downward, so ingest and training embed the same text.
"""

from collections.abc import Sequence


def _sentence(text: str) -> str:
    text = " ".join(text.split())
    return text if not text or text[-1] in ".!?" else text + "."


def pin_text(title: str, description: str, board: str, tags: Sequence[str]) -> str:
    """Join title, description, board and tags into one text, most specific words first."""
    clean_tags = [" ".join(tag.split()) for tag in tags]
    clean_tags = [tag for tag in clean_tags if tag]
    board = " ".join(board.split())
    parts = [
        _sentence(title),
        _sentence(description),
        f"Board: {board}." if board else "",
        f"Tags: {', '.join(clean_tags)}" if clean_tags else "",
    ]
    return " ".join(part for part in parts if part)
