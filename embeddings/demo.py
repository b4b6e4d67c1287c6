"""The demo catalogue: the items behind the demo shop's products, shared by commands and benchmarks.

One item per product of `ingestion.demo` (sku-0001, …) with the same category as an
attribute, a plausible title and description, a price and a brand. Everything is drawn
from a random generator seeded per product, so a re-run upserts identical items and
writes nothing; the embeddings follow after commit, in the workers.
"""

import random

from embeddings.validation import ItemInput
from ingestion.demo import SEED, build_specs

# category -> (products, adjectives, descriptions in which {product} and {adjective} appear)
CATALOGUE: dict[str, tuple[list[str], list[str], list[str]]] = {
    "books": (
        [
            "mystery novel",
            "cookbook",
            "field guide to birds",
            "history of Rome",
            "poetry collection",
            "science fiction saga",
            "travel guide to Japan",
            "biography of a jazz pianist",
        ],
        ["bestselling", "illustrated", "pocket", "award-winning", "annotated", "hardback"],
        [
            "A {adjective} {product} that readers finish in one sitting.",
            "This {adjective} {product} comes with maps, notes and an index.",
            "The {adjective} {product} critics recommend for long evenings and train journeys.",
        ],
    ),
    "games": (
        [
            "strategy board game",
            "party card game",
            "cooperative dungeon game",
            "chess set",
            "jigsaw puzzle",
            "trivia quiz game",
            "racing video game",
            "tabletop role-playing starter kit",
        ],
        ["family", "competitive", "two-player", "deluxe", "travel-size", "classic"],
        [
            "A {adjective} {product} for game nights with friends, about an hour per round.",
            "This {adjective} {product} is easy to learn and hard to master.",
            "Roll, draw and plan ahead: a {adjective} {product} for ages ten and up.",
        ],
    ),
    "garden": (
        [
            "garden hose",
            "pruning shears",
            "raised vegetable bed",
            "bird feeder",
            "lawn mower",
            "watering can",
            "compost bin",
            "seed starter tray",
        ],
        ["heavy-duty", "ergonomic", "weatherproof", "compact", "cedar", "stainless"],
        [
            "A {adjective} {product} for backyard gardeners who grow their own tomatoes.",
            "This {adjective} {product} survives rain, frost and summer sun.",
            "Keep flower beds and lawns tidy with a {adjective} {product}.",
        ],
    ),
    "kitchen": (
        [
            "cast iron skillet",
            "chef's knife",
            "espresso machine",
            "stand mixer",
            "cutting board",
            "dutch oven",
            "pour-over coffee kettle",
            "set of mixing bowls",
        ],
        ["professional", "non-stick", "enamelled", "stainless steel", "bamboo", "dishwasher-safe"],
        [
            "A {adjective} {product} for home cooks who bake bread and sear steaks.",
            "This {adjective} {product} heats evenly and cleans up in a minute.",
            "Make breakfast, soups and weekend dinners with a {adjective} {product}.",
        ],
    ),
    "toys": (
        [
            "wooden train set",
            "plush teddy bear",
            "building blocks",
            "remote control car",
            "dollhouse",
            "science experiment kit",
            "kite",
            "puppet theatre",
        ],
        ["colourful", "educational", "soft", "battery-powered", "handmade", "toddler-safe"],
        [
            "A {adjective} {product} that keeps children busy on rainy afternoons.",
            "This {adjective} {product} encourages imagination and play for ages three and up.",
            "Unwrap a {adjective} {product}: a birthday present kids remember.",
        ],
    ),
    "music": (
        [
            "acoustic guitar",
            "vinyl record player",
            "digital piano",
            "ukulele",
            "pair of studio headphones",
            "drum practice pad",
            "jazz vinyl album",
            "bluetooth speaker",
        ],
        ["vintage", "beginner", "studio-grade", "portable", "hand-crafted", "wireless"],
        [
            "A {adjective} {product} with warm sound for practice and small concerts.",
            "This {adjective} {product} brings records, playlists and live sessions to life.",
            "Learn chords and rhythms with a {adjective} {product}.",
        ],
    ),
}
BRANDS = ["Northwind", "Acme", "Blue Heron", "Fable & Co", "Kestrel", "Maple Works", "Orbit"]


def catalogue_item(sku: str, category: str) -> ItemInput:
    """Return the demo item of one product; a function of the sku and category only."""
    products, adjectives, descriptions = CATALOGUE[category]
    rng = random.Random(f"{SEED}:{sku}")
    product, adjective = rng.choice(products), rng.choice(adjectives)
    brand = rng.choice(BRANDS)
    text = " ".join(
        line.format(product=product, adjective=adjective) for line in rng.sample(descriptions, k=2)
    )
    return ItemInput(
        external_id=sku,
        title=f"{brand} {adjective} {product}",
        text=text,
        attributes={
            "category": category,
            "brand": brand,
            "price": round(rng.uniform(4, 250), 2),
            "in_stock": rng.random() > 0.15,
        },
    )


def demo_products(series: int) -> list[tuple[str, str]]:
    """Return (sku, category) of every product that `seed_demo --series N` writes."""
    products = []
    for spec in build_specs(series):
        metric, tags, item = spec.key
        if metric == "shop.product_views" and item is not None:
            products.append((item, dict(tags)["category"]))
    return products
