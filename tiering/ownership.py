"""Which member of a fleet owns a block: rendezvous (highest-random-weight) hashing. Pure.

Every member scores every block with a hash of (member id, block) and the highest score owns
it (Thaler and Ravishankar, 1998; AIStore's HRW placement). No ring is kept and none needs
repairing: the owner of a block is a function of the block and the member list alone, so two
nodes that agree on the members agree on every owner without talking to each other, and a
member leaving moves exactly the blocks it owned (about 1/N of them) while every other block
keeps its owner. Two nodes that disagree on the members can only fetch a block twice: blocks
are keyed by ETag and immutable, so they never serve different bytes.

A block is named here by (bucket, key, index), without its ETag: a cold GET must find the
owner of block 0 before anyone knows the ETag, and it fetches the object's metadata with that
block, so an object's metadata follows the owner of its block 0 and a herd across the fleet on
one cold object resolves it once. Versions of one key therefore share owners, which costs
nothing (their blocks are still keyed by ETag wherever they are stored).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import xxhash


def block_id(bucket: str, key: str, index: int) -> bytes:
    """The bytes a block is scored by: bucket, key and index, unambiguously joined."""
    return f"{bucket}\0{key}\0{index}".encode()


def score(member: str, block: bytes) -> int:
    """A member's weight for a block: a 64-bit hash of both, seeded by nothing else."""
    return xxhash.xxh3_64_intdigest(block, seed=xxhash.xxh3_64_intdigest(member.encode()))


def owner(members: Sequence[str], block: bytes) -> str:
    """The member with the highest score for `block`. Needs a member."""
    if not members:
        raise ValueError("a fleet with no members owns nothing")
    # Ties between 64-bit scores are all but impossible; breaking them by id keeps the owner
    # a function of the member set, whatever order the list came in.
    return max(members, key=lambda m: (score(m, block), m))


def ranked(members: Iterable[str], block: bytes) -> list[str]:
    """Every member by its score for `block`, the owner first: who to ask when it is down."""
    return sorted(members, key=lambda m: (score(m, block), m), reverse=True)
