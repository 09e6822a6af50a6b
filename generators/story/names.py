"""Name pools for the story world, composed combinatorially so names never run out.

A place is ``<root><suffix> <kind>`` ("Ashford Harbor"), a character ``<given> <root><suffix>``
("Mira Galeheart"), an item ``<adjective> <material> <object>`` ("gilded jade lantern"). Each pool
maps an integer index to a name by mixed-radix digits, so drawing distinct indices gives distinct
names, deterministically. Every word is letters only, and names are written after a space, so a
name's token count is the sum of its words' counts under Qwen's pre-tokenizer (see fill.py).
The smallest pool holds over 100k names: enough for stories far beyond 4M tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PLACE_ROOTS = (
    "Alder Amber Apple Ash Aspen Badger Barley Bell Birch Black Blue Bramble Briar Bright Bronze Candle "
    "Cedar Cherry Clay Clover Cold Copper Coral Crane Crow Crystal Daisy Dawn Deer Dove Dusk Eagle East "
    "Elder Elm Ember Falcon Fern Flint Fox Frost Garnet Glen Gold Green Grey Hart Hawk Hazel Heather "
    "Heron Holly Honey Iron Ivy Juniper Kings Lake Lark Laurel Lily Linden Lynx Maple Marsh Mill Mist "
    "Moon Fawn Myrtle Nettle North Oak Olive Otter Pearl Pebble Pine Poppy Quartz Queens Rain Raven Red "
    "Reed River Robin Rose Rowan Ruby Rush Saffron Sage Salt Shadow Silver Snow South Sparrow Spruce "
    "Star Stone Storm Summer Sun Swan Tansy Thistle Thorn Thunder Timber Tulip Velvet Violet West Wheat "
    "White Wild Willow Winter Wolf Wren Yarrow"
).split()
PLACE_SUFFIXES = (
    "ford haven mere wick dale bury field gate hold holm hurst ton stead moor brook cliff crest fall "
    "fen march mouth port reach ridge shire stow thorpe wold worth combe croft"
).split()
PLACE_KINDS = (
    "Harbor Crossing Market Hollow Keep Landing Springs Heights Bridge Abbey Bay Citadel Commons Court "
    "Docks Fair Falls Forge Fort Gardens Grove Hall Junction Lighthouse Mill Outpost Pass Quarter "
    "Square Tower Village Wharf Rise Sanctuary Terrace Oasis Bazaar Monastery"
).split()

GIVEN_NAMES = (
    "Adrian Aela Agnes Alaric Albin Alda Alma Amara Ambrose Anselm Anya Ariadne Astrid Aurelia Basil "
    "Beatrix Benedict Bertram Bianca Brena Brynn Caius Calla Callisto Camilla Cassius Cecily Cedric "
    "Celeste Cleo Clement Corin Cosima Cyrus Dafne Damon Daria Delia Dorian Edda Edmund Eira Elara "
    "Eliana Elias Elise Emeric Enzo Erika Esme Evander Fabian Faye Felix Fenna Flora Florian Freya "
    "Gaia Galen Gemma Gideon Greta Gwen Hadrian Halina Hector Helena Hermia Hilda Hugo Ianthe Ida "
    "Ilse Imre Ines Ingrid Iris Isolde Ivo Jasper Jonas Josefa Julian Juno Kallias Kaspar Katrin "
    "Kira Lachlan Leda Leon Leona Linus Livia Lorenz Lucian Lucia Lyra Lysander Magnus Maren Marina "
    "Marius Matilda Maxim Mila Mira Myrto Nadia Nerea Nico Nika Nora Octavia Odette Olaf Olinda "
    "Orestes Orla Osric Otto Paloma Pavel Petra Petros Phaedra Philippa Quentin Quilla Rafael Rhea "
    "Rina Roderic Rosalind Roxana Rufus Sabine Selene Seren Silas Sigrid Simeon Sofia Stellan Sven "
    "Talia Tamsin Teodor Thalia Thea Theron Tobias Ulla Ulric Una Urania Valen Vera Vesna Viggo "
    "Vitalis Wanda Wendel Wilma Xanthe Xavier Yara Yannick Yvette Zarek Zelda Zora Zephyr Anouk "
    "Bastian Cora Desmond Elio Fiora Gregor Hanna Ignatius Jorah Kaia Lennart Mabel Neve Oskar"
).split()
FAMILY_ROOTS = (
    "Amber Ash Black Blue Bold Brave Bright Copper Dark Dawn Deep Ever Fair Far Free Frost Gale Gold "
    "Good Green Grey Grim Hale Hard High Iron Keen Light Lone Long Mild Moon Night Oak Old Proud "
    "Quick Raven Red Rich Rose Sharp Silver Soft Star Calm Stone Storm Strong Sun Sweet Swift Thorn "
    "True Warm White Wild Wise Young Kind Glad Clear Fleet Merry Noble Pale Quiet Steady Brisk"
).split()
FAMILY_SUFFIXES = (
    "son wright smith well more ley wood ward cott lock hill shaw bourne low mont water wind feather "
    "bloom bough leaf song heart vane"
).split()

ITEM_ADJECTIVES = (
    "ancient ornate engraved weathered gilded polished carved delicate sturdy gleaming tarnished painted "
    "jeweled hammered etched braided enameled lacquered inlaid fluted burnished faceted twisted slender "
    "heavy tiny massive curved hollow round folded woven dyed scented smoky frosted glazed beaded "
    "fringed studded riveted forged spun stitched embroidered patterned speckled striped mottled faded "
    "crimson azure golden silvery ashen pale dusky shining rustic royal humble lucky"
).split()
ITEM_MATERIALS = (
    "bronze silver gold ivory jade crystal obsidian marble amber copper lapis porcelain ebony oak cedar "
    "pewter brass iron tin glass bone leather silk linen wool coral pearl onyx quartz garnet topaz opal "
    "granite slate clay walnut birch steel velvet"
).split()
ITEM_OBJECTS = (
    "amulet figurine sword shield goblet necklace ring statuette pendant candelabra anklet comb seal "
    "chalice key bracelet mask lamp idol vase lantern compass dagger flute harp lute drum bowl cup jug "
    "plate mirror brooch crown tiara scepter orb box chest casket coffer urn ewer flask vial spoon ladle "
    "thimble spindle quill inkwell bell chime rattle whistle buckle clasp belt glove cloak hood scarf "
    "sash fan parasol cane staff wand spear axe bow quiver helmet gauntlet saddle bridle spur anchor "
    "oar hourglass sundial astrolabe telescope abacus padlock hairpin locket talisman token medallion "
    "chessboard teapot kettle censer"
).split()


@dataclass(frozen=True)
class Pool:
    """Names ``word_0 ... word_k`` built from ``parts`` (tuples of words) glued by ``glue`` strings.

    Index i picks one word from each part by mixed-radix digits (last part fastest).
    """

    parts: tuple[tuple[str, ...], ...]
    glue: tuple[str, ...]  # glue[j] goes between part j and part j+1

    @property
    def size(self) -> int:
        return int(np.prod([len(p) for p in self.parts], dtype=np.int64))

    def digits(self, indices: np.ndarray) -> list[np.ndarray]:
        """Per part, the word index of each name index."""
        out = []
        rest = np.asarray(indices, dtype=np.int64)
        for part in reversed(self.parts):
            rest, digit = np.divmod(rest, len(part))
            out.append(digit)
        return out[::-1]

    def names(self, indices: np.ndarray) -> list[str]:
        digits = self.digits(indices)
        cols = [np.asarray(part, dtype=object)[d] for part, d in zip(self.parts, digits)]
        out = cols[0]
        for glue, col in zip(self.glue, cols[1:]):
            out = out + glue + col
        return out.tolist()


def _unique(words: list[str]) -> tuple[str, ...]:
    if len(set(words)) != len(words) or not all(w.isalpha() for w in words):
        raise ValueError("word lists must hold distinct, letters-only words")
    return tuple(words)


PLACES = Pool((_unique(PLACE_ROOTS), _unique(PLACE_SUFFIXES), _unique(PLACE_KINDS)), ("", " "))
CHARACTERS = Pool((_unique(GIVEN_NAMES), _unique(FAMILY_ROOTS), _unique(FAMILY_SUFFIXES)), (" ", ""))
ITEMS = Pool((_unique(ITEM_ADJECTIVES), _unique(ITEM_MATERIALS), _unique(ITEM_OBJECTS)), (" ", " "))


def draw(pool: Pool, count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` distinct name indices of `pool`, in random order."""
    if count > pool.size:
        raise ValueError(f"the name pool holds only {pool.size} names, {count} requested")
    return rng.choice(pool.size, size=count, replace=False)
