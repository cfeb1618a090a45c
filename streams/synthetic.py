"""Synthetic pins for tests, benchmarks and the embedded demo: generated text, not real pins.

Every pin is a piece of home decor described by a style, a category, a material and
a colour. Styles share categories, materials and colours, so what tells two styles
apart is each style's own vocabulary (farmhouse "shiplap", scandinavian "hygge"):
a fine-grained signal an encoder has to learn. Output depends only on the seed
(and, per pin, its index), never on global random state or call order.
"""

import json
import random
from collections.abc import Mapping
from dataclasses import dataclass, replace

from streams.events import MAX_EVENT_BYTES, MAX_PIN_ID_CHARS, PinEvent, now_ms


@dataclass(frozen=True)
class StyleVocabulary:
    """The words that carry one style's signal, and the label its boards use."""

    board_label: str
    adjectives: tuple[str, ...]
    motifs: tuple[str, ...]

    @property
    def words(self) -> tuple[str, ...]:
        """Every characteristic word or phrase of the style."""
        return self.adjectives + self.motifs


STYLE_VOCABULARY: dict[str, StyleVocabulary] = {
    "mid-century modern": StyleVocabulary(
        "Mid-Century",
        ("tapered-leg", "retro", "atomic-age", "sculptural"),
        ("hairpin legs", "a starburst clock", "Eames-era lines", "a sputnik chandelier"),
    ),
    "scandinavian": StyleVocabulary(
        "Scandinavian",
        ("airy", "Nordic", "cosy", "light-filled"),
        ("hygge", "light oak", "sheepskin throws", "candlelit evenings"),
    ),
    "rustic": StyleVocabulary(
        "Rustic",
        ("rough-hewn", "knotty", "hand-forged", "timber-framed"),
        ("reclaimed wood", "a log cabin", "a stone fireplace", "exposed beams"),
    ),
    "farmhouse": StyleVocabulary(
        "Farmhouse",
        ("distressed", "whitewashed", "country-style", "chippy-painted"),
        ("shiplap", "a barn door", "an apron-front sink", "mason jars"),
    ),
    "industrial": StyleVocabulary(
        "Industrial",
        ("loft-style", "riveted", "utilitarian", "blackened-steel"),
        ("exposed brick", "Edison bulbs", "pipe shelving", "polished concrete"),
    ),
    "bohemian": StyleVocabulary(
        "Boho",
        ("eclectic", "free-spirited", "layered", "fringed"),
        ("macrame", "hanging plants", "kilim patterns", "floor cushions"),
    ),
    "minimalist": StyleVocabulary(
        "Minimalist",
        ("clean-lined", "uncluttered", "pared-back", "understated"),
        ("negative space", "hidden storage", "a monochrome palette", "less is more"),
    ),
    "art deco": StyleVocabulary(
        "Art Deco",
        ("glamorous", "geometric", "gilded", "fluted"),
        ("fan motifs", "Gatsby glamour", "a sunburst mirror", "lacquered finishes"),
    ),
    "coastal": StyleVocabulary(
        "Coastal",
        ("breezy", "sun-bleached", "beachy", "nautical"),
        ("driftwood", "a seaside cottage", "striped linens", "sea glass"),
    ),
    "japandi": StyleVocabulary(
        "Japandi",
        ("serene", "wabi-sabi", "low-profile", "handcrafted"),
        ("shoji screens", "zen calm", "handmade ceramics", "tatami mats"),
    ),
}
STYLES: tuple[str, ...] = tuple(STYLE_VOCABULARY)

# Each category lives in a few rooms; a board is one style x one room.
CATEGORY_ROOMS: dict[str, tuple[str, ...]] = {
    "coffee table": ("Living Room",),
    "dining chair": ("Dining Room",),
    "floor lamp": ("Living Room", "Bedroom", "Home Office"),
    "area rug": ("Living Room", "Bedroom", "Dining Room"),
    "bookshelf": ("Living Room", "Home Office"),
    "sofa": ("Living Room",),
    "bed frame": ("Bedroom",),
    "pendant light": ("Dining Room", "Kitchen", "Entryway"),
    "nightstand": ("Bedroom",),
    "wall art": ("Living Room", "Bedroom", "Entryway", "Home Office"),
    "armchair": ("Living Room", "Bedroom"),
    "sideboard": ("Dining Room", "Entryway"),
    "writing desk": ("Home Office",),
    "bar stool": ("Kitchen",),
}
CATEGORIES: tuple[str, ...] = tuple(CATEGORY_ROOMS)

MATERIALS: tuple[str, ...] = (
    "walnut",
    "oak",
    "teak",
    "brass",
    "marble",
    "rattan",
    "linen",
    "velvet",
    "leather",
    "jute",
    "travertine",
)

COLOURS: tuple[str, ...] = (
    "mustard",
    "sage green",
    "terracotta",
    "navy",
    "charcoal",
    "cream",
    "blush pink",
    "olive",
    "rust",
    "ivory",
    "emerald",
    "slate blue",
)

# Every title names style, material, category and colour.
_TITLES = (
    "{Style} {material} {category} in {colour}",
    "{Adjective} {style} {category} in {colour} {material}",
    "{Colour} {material} {category}, {style} style",
)
_FIRST_SENTENCES = (
    "This {adjective} {category} in {material} brings {motif} to your {room}.",
    "{Adjective} and {adjective2}, this {colour} {category} is all about {motif}.",
    "This {material} {category} pairs {motif} with {adjective} {colour} tones.",
)
_SECOND_SENTENCES = (
    "Perfect for any {style} {room}.",
    "Style it with {motif2} for the full look.",
)
_QUERIES = (
    "{style} {category}",
    "{style} {category} ideas",
    "{colour} {style} {category}",
    "{style} {room} ideas",
    "{material} {category} {style} style",
    "{adjective} {material} {category}",
    "{category} with {motif}",
)
_IMAGE_URL_SHARE = 0.9


@dataclass(frozen=True)
class SyntheticPin:
    """A generated pin event together with the attributes it was generated from."""

    event: PinEvent
    style: str
    category: str
    material: str
    colour: str


class PinGenerator:
    """Seeded generator of synthetic pin events, updates, deletes and text queries.

    `styles` picks the styles pins are drawn from (default: every style of
    STYLE_VOCABULARY); other vocabularies make pins of styles the default never shows.
    """

    def __init__(
        self,
        seed: int = 0,
        id_prefix: str = "pin",
        styles: Mapping[str, StyleVocabulary] = STYLE_VOCABULARY,
    ) -> None:
        longest_id = len(id_prefix) + len("-") + 8
        if not id_prefix or longest_id > MAX_PIN_ID_CHARS:
            raise ValueError(
                f"id_prefix must be 1-{MAX_PIN_ID_CHARS - 9} characters, got {id_prefix!r}"
            )
        if not styles:
            raise ValueError("styles must name at least one style")
        self.seed = seed
        self.id_prefix = id_prefix
        self.vocabulary = dict(styles)
        self.styles = tuple(self.vocabulary)

    def pins(self, count: int, start: int = 0, event_time: int | None = None) -> list[SyntheticPin]:
        """Upserts for pin indexes start .. start + count - 1; event_time defaults to now."""
        if count < 0 or start < 0:
            raise ValueError(f"count and start must be >= 0, got count={count}, start={start}")
        time_ms = now_ms() if event_time is None else event_time
        return [self._pin(index, time_ms) for index in range(start, start + count)]

    def updated(self, pin: SyntheticPin, event_time: int | None = None) -> SyntheticPin:
        """An edit of `pin`: same pin_id, style and category, a new colour and new text."""
        rng = random.Random(f"{self.seed}:update:{pin.event.pin_id}:{pin.colour}")
        colour = rng.choice([c for c in COLOURS if c != pin.colour])
        # Later than the pin it replaces, even when both are generated in one millisecond.
        time_ms = max(now_ms(), pin.event.event_time + 1) if event_time is None else event_time
        vocabulary = self.vocabulary[pin.style]
        room = pin.event.board.removeprefix(vocabulary.board_label + " ")
        if room not in CATEGORY_ROOMS[pin.category]:
            room = rng.choice(CATEGORY_ROOMS[pin.category])
        title, description, tags = _text(
            rng, pin.style, vocabulary, pin.category, pin.material, colour, room
        )
        event = replace(
            pin.event, title=title, description=description, tags=tags, event_time=time_ms
        )
        return replace(pin, event=event, colour=colour)

    def delete(self, pin_id: str, event_time: int | None = None) -> PinEvent:
        """A delete event for `pin_id`; event_time defaults to now."""
        time_ms = now_ms() if event_time is None else event_time
        return PinEvent(pin_id=pin_id, op="delete", event_time=time_ms)

    def queries(self, count: int) -> list[tuple[str, str]]:
        """`count` text queries as (query_text, style the query asks for)."""
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count}")
        rng = random.Random(f"{self.seed}:queries")
        result = []
        for _ in range(count):
            style = rng.choice(self.styles)
            vocabulary = self.vocabulary[style]
            category = rng.choice(CATEGORIES)
            text = rng.choice(_QUERIES).format(
                style=style,
                category=category,
                colour=rng.choice(COLOURS),
                material=rng.choice(MATERIALS),
                room=rng.choice(CATEGORY_ROOMS[category]).lower(),
                adjective=rng.choice(vocabulary.adjectives),
                motif=bare_motif(rng.choice(vocabulary.motifs)),
            )
            result.append((text.lower(), style))
        return result

    def _pin(self, index: int, event_time: int) -> SyntheticPin:
        pin_id = f"{self.id_prefix}-{index:08d}"
        # One stream per pin, so a pin never depends on which pins were generated before it.
        rng = random.Random(f"{self.seed}:{self.id_prefix}:{index}")
        style = rng.choice(self.styles)
        vocabulary = self.vocabulary[style]
        category = rng.choice(CATEGORIES)
        material = rng.choice(MATERIALS)
        colour = rng.choice(COLOURS)
        room = rng.choice(CATEGORY_ROOMS[category])
        title, description, tags = _text(rng, style, vocabulary, category, material, colour, room)
        image_url = None
        if rng.random() < _IMAGE_URL_SHARE:
            image_url = f"https://images.example.com/pins/{pin_id}.jpg"
        event = PinEvent(
            pin_id=pin_id,
            op="upsert",
            title=title,
            description=description,
            board=f"{vocabulary.board_label} {room}",
            tags=tags,
            image_url=image_url,
            event_time=event_time,
        )
        return SyntheticPin(event, style, category, material, colour)


def malformed_events() -> list[tuple[bytes | None, bytes | None, str]]:
    """Bad records for dead-letter tests, as (key, value, what is wrong with it)."""

    def record(**fields: object) -> bytes:
        return json.dumps(fields).encode("utf-8")

    good = {"pin_id": "bad-1", "op": "upsert", "title": "Oak sideboard", "event_time": 1}
    oversize = record(**good, padding="x" * MAX_EVENT_BYTES)
    return [
        (b"bad-1", b"{not json", "not JSON"),
        (b"bad-1", b'["bad-1", "upsert"]', "JSON array, not an object"),
        (None, record(op="upsert", title="Oak sideboard", event_time=1), "missing pin_id"),
        (None, record(**{**good, "pin_id": "p" * 65}), "pin_id too long"),
        (b"bad-1", record(**{**good, "op": "insert"}), "wrong op"),
        (b"bad-1", record(**good, tags="oak,sideboard"), "tags not a list"),
        (b"bad-1", record(**{**good, "event_time": "2024-01-01"}), "event_time a string"),
        (b"bad-1", record(**{**good, "event_time": True}), "event_time a boolean"),
        (b"bad-1", b'{"pin_id": "bad-1", "op": "upsert", "title": "\xff\xfe"}', "invalid UTF-8"),
        (b"bad-1", oversize, "oversize value"),
        (None, b"", "empty value"),
        (b"\xff\xfe", None, "tombstone whose key is not UTF-8"),
        (b"bad-1", record(pin_id="bad-1", op="upsert", event_time=1), "upsert without title"),
        (b"other-pin", record(**good), "key differs from pin_id"),
    ]


def _text(
    rng: random.Random,
    style: str,
    vocabulary: StyleVocabulary,
    category: str,
    material: str,
    colour: str,
    room: str,
) -> tuple[str, str, tuple[str, ...]]:
    """Title, description and tags of one pin, all drawn from `rng`."""
    adjective, adjective2 = rng.sample(vocabulary.adjectives, 2)
    motif, motif2 = rng.sample(vocabulary.motifs, 2)
    words = {
        "style": style,
        "category": category,
        "material": material,
        "colour": colour,
        "room": room.lower(),
        "adjective": adjective,
        "adjective2": adjective2,
        "motif": motif,
        "motif2": motif2,
    }
    words |= {name.capitalize(): _capitalised(value) for name, value in words.items()}
    title = rng.choice(_TITLES).format(**words)
    description = rng.choice(_FIRST_SENTENCES).format(**words)
    if rng.random() < 0.5:
        description += " " + rng.choice(_SECOND_SENTENCES).format(**words)
    vocab_tags = rng.sample([adjective, bare_motif(motif)], rng.randint(1, 2))
    return title, description, (style, category, material, colour, *vocab_tags)


def _capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]


def bare_motif(motif: str) -> str:
    """`motif` without its leading article, for tags and queries."""
    for article in ("a ", "an "):
        if motif.startswith(article):
            return motif[len(article) :]
    return motif
