//! Merkle trees as RFC 6962 (and RFC 9162, which keeps its hashing) defines them: the hashes
//! of a tamper-evident log (PRODUCT Decision 16), its inclusion and consistency proofs, and the
//! [`Frontier`] a verifier needs to compute the next root from a root it trusts and the leaves
//! that follow.
//!
//! - A leaf's hash is `SHA-256(0x00 ‖ leaf)`, an interior node's `SHA-256(0x01 ‖ left ‖ right)`:
//!   the prefixes keep a leaf from passing for a node.
//! - The root of `n` leaves (`MTH`) is `SHA-256("")` for none, the leaf hash for one, and else
//!   the node of the roots of the first `k` leaves and of the rest, `k` being the largest power
//!   of two below `n`.
//!
//! Proofs are produced from the leaf hashes and checked against roots alone, by the algorithms
//! of RFC 9162 §2.1.3 and §2.1.4; every check says which way it failed.

use sha2::{Digest, Sha256};

/// A SHA-256 hash: a leaf's, a node's or a tree's root.
pub type Hash = [u8; 32];

/// The hash of one leaf, given its bytes.
pub fn leaf_hash(leaf: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0x00]);
    hasher.update(leaf);
    hasher.finalize().into()
}

/// The hash of an interior node.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0x01]);
    hasher.update(left);
    hasher.update(right);
    hasher.finalize().into()
}

/// The root of an empty tree: `SHA-256` of nothing.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// The root of the tree whose leaves hash to `leaves`, in order.
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = split(n);
            node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// The root of a perfect subtree given the roots of its equal parts, left to right (a power of
/// two of them): a stored chunk's or group's root from its chunks'.
pub fn root_of_parts(parts: &[Hash]) -> Hash {
    debug_assert!(parts.len().is_power_of_two());
    match parts {
        [one] => *one,
        _ => {
            let half = parts.len() / 2;
            node_hash(
                &root_of_parts(&parts[..half]),
                &root_of_parts(&parts[half..]),
            )
        }
    }
}

/// The largest power of two below `n` (n ≥ 2): where a tree of `n` leaves splits.
fn split(n: usize) -> usize {
    debug_assert!(n >= 2);
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

/// Why a proof does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("index {index} is not in a tree of {size} leaves")]
    IndexBeyondSize { index: u64, size: u64 },
    #[error("a tree of {first} leaves cannot be a prefix of one of {second}")]
    SizesOutOfOrder { first: u64, second: u64 },
    #[error("the proof has {0} hashes, not as many as the tree sizes need")]
    WrongLength(usize),
    #[error("the proof does not lead to the root")]
    RootMismatch,
}

/// Where proofs get the hashes they are made of: the roots of *perfect, aligned* subtrees,
/// `2^height` leaves starting at `start` (a multiple of `2^height`). A log that keeps only
/// some of its hashes (the store keeps each full chunk's root and the leaves of recent
/// chunks) answers for what it has and `None` for the rest, and a proof that needs more fails
/// as a whole rather than coming out wrong.
pub trait Subtrees {
    fn perfect(&self, start: u64, height: u32) -> Option<Hash>;
}

/// A slice of leaf hashes holds every subtree.
impl Subtrees for [Hash] {
    fn perfect(&self, start: u64, height: u32) -> Option<Hash> {
        let start = usize::try_from(start).ok()?;
        let end = start.checked_add(1 << height)?;
        self.get(start..end).map(root)
    }
}

/// The root of the `len` leaves from `start`, where `[start, start + len)` is a range RFC 6962's
/// recursion visits (its start a multiple of the largest power of two below `len`): built from
/// perfect subtrees, largest first.
pub fn range_root(tree: &(impl Subtrees + ?Sized), start: u64, len: u64) -> Option<Hash> {
    if len == 0 {
        return Some(empty_root());
    }
    if len.is_power_of_two() && start.is_multiple_of(len) {
        return tree.perfect(start, len.trailing_zeros());
    }
    let k = split64(len);
    Some(node_hash(
        &range_root(tree, start, k)?,
        &range_root(tree, start + k, len - k)?,
    ))
}

/// [`split`] for tree sizes as logs count them.
fn split64(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (u64::BITS - 1 - (n - 1).leading_zeros())
}

/// The inclusion proof (audit path) of leaf `index` in the tree whose leaves hash to `leaves`:
/// the hashes that, with the leaf's, recompute the root. `None` when `index` is not a leaf.
pub fn inclusion_proof(leaves: &[Hash], index: usize) -> Option<Vec<Hash>> {
    inclusion_proof_in(leaves, index as u64, leaves.len() as u64)
}

/// The inclusion proof of leaf `index` in the first `size` leaves of `tree`; `None` when
/// `index` is not among them or `tree` lacks a hash the proof needs.
pub fn inclusion_proof_in(
    tree: &(impl Subtrees + ?Sized),
    index: u64,
    size: u64,
) -> Option<Vec<Hash>> {
    if index >= size {
        return None;
    }
    let mut proof = Vec::new();
    path(tree, index, 0, size, &mut proof)?;
    Some(proof)
}

/// RFC 6962's `PATH(m, D[start..start + n])`, bottom first.
fn path(
    tree: &(impl Subtrees + ?Sized),
    m: u64,
    start: u64,
    n: u64,
    proof: &mut Vec<Hash>,
) -> Option<()> {
    if n <= 1 {
        return Some(());
    }
    let k = split64(n);
    if m < k {
        path(tree, m, start, k, proof)?;
        proof.push(range_root(tree, start + k, n - k)?);
    } else {
        path(tree, m - k, start + k, n - k, proof)?;
        proof.push(range_root(tree, start, k)?);
    }
    Some(())
}

/// Checks that `leaf` is leaf `index` of the tree of `size` leaves whose root is `root`
/// (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::IndexBeyondSize { index, size });
    }
    let (mut f, mut s) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if s == 0 {
            return Err(ProofError::WrongLength(proof.len()));
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(ProofError::WrongLength(proof.len()));
    }
    if r != *root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// The consistency proof between the tree of the first `first` of `leaves` and the tree of
/// all of them: what shows the second extends the first. Empty when `first` is 0 or all.
pub fn consistency_proof(leaves: &[Hash], first: usize) -> Option<Vec<Hash>> {
    consistency_proof_in(leaves, first as u64, leaves.len() as u64)
}

/// The consistency proof between the first `first` and the first `size` leaves of `tree`;
/// `None` when `first > size` or `tree` lacks a hash the proof needs.
pub fn consistency_proof_in(
    tree: &(impl Subtrees + ?Sized),
    first: u64,
    size: u64,
) -> Option<Vec<Hash>> {
    if first > size {
        return None;
    }
    let mut proof = Vec::new();
    if first > 0 && first < size {
        subproof(tree, first, 0, size, true, &mut proof)?;
    }
    Some(proof)
}

/// RFC 6962's `SUBPROOF(m, D[start..start + n], b)`, bottom first.
fn subproof(
    tree: &(impl Subtrees + ?Sized),
    m: u64,
    start: u64,
    n: u64,
    whole: bool,
    proof: &mut Vec<Hash>,
) -> Option<()> {
    if m == n {
        if !whole {
            proof.push(range_root(tree, start, n)?);
        }
        return Some(());
    }
    let k = split64(n);
    if m <= k {
        subproof(tree, m, start, k, whole, proof)?;
        proof.push(range_root(tree, start + k, n - k)?);
    } else {
        subproof(tree, m - k, start + k, n - k, false, proof)?;
        proof.push(range_root(tree, start, k)?);
    }
    Some(())
}

/// Checks that the tree of `second` leaves with root `second_root` extends the tree of `first`
/// leaves with root `first_root` (RFC 9162 §2.1.4.2).
pub fn verify_consistency(
    first: u64,
    second: u64,
    first_root: &Hash,
    second_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if first > second {
        return Err(ProofError::SizesOutOfOrder { first, second });
    }
    if first == second {
        if !proof.is_empty() {
            return Err(ProofError::WrongLength(proof.len()));
        }
        return match first_root == second_root {
            true => Ok(()),
            false => Err(ProofError::RootMismatch),
        };
    }
    if first == 0 {
        // Every tree extends the empty one.
        return match proof.is_empty() {
            true => Ok(()),
            false => Err(ProofError::WrongLength(proof.len())),
        };
    }
    // A first tree of a power of two leaves is a node of the second: its root starts the path.
    let mut path: Vec<&Hash> = Vec::with_capacity(proof.len() + 1);
    if first.is_power_of_two() {
        path.push(first_root);
    }
    path.extend(proof);
    let Some((start, rest)) = path.split_first() else {
        return Err(ProofError::WrongLength(proof.len()));
    };
    let (mut f, mut s) = (first - 1, second - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let (mut fr, mut sr) = (**start, **start);
    for c in rest {
        if s == 0 {
            return Err(ProofError::WrongLength(proof.len()));
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(ProofError::WrongLength(proof.len()));
    }
    if fr != *first_root || sr != *second_root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// The right edge of a tree as it grows: the roots of its largest perfect subtrees, left to
/// right, one per set bit of its size. With it, a verifier who trusts a tree's root computes
/// the root after more leaves without any leaf before them — what a checkpoint event carries
/// in the stream — and the log appends without re-reading old leaves.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Frontier {
    size: u64,
    /// Perfect subtrees' roots, largest (leftmost) first.
    subtrees: Vec<Hash>,
}

impl Frontier {
    /// The frontier of an empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// The frontier of a tree of `size` leaves given its perfect subtrees' roots (largest
    /// first); `None` unless there is one per set bit of `size`.
    pub fn from_parts(size: u64, subtrees: Vec<Hash>) -> Option<Self> {
        (subtrees.len() == size.count_ones() as usize).then_some(Self { size, subtrees })
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// The perfect subtrees' roots, largest first.
    pub fn subtrees(&self) -> &[Hash] {
        &self.subtrees
    }

    /// Adds the next leaf, by its hash.
    pub fn push(&mut self, leaf: Hash) {
        self.push_completing(leaf, 0);
    }

    /// Adds the next leaf, by its hash; returns the root of the perfect subtree of
    /// `2^height` leaves that it completes, when the new size is a multiple of `2^height`. The
    /// push works that root out on its way, so a log learns a full chunk's root without hashing
    /// the chunk's leaves again.
    pub fn push_completing(&mut self, leaf: Hash, height: u32) -> Option<Hash> {
        let mut carry = leaf;
        let mut completed = (height == 0).then_some(leaf);
        // Each trailing set bit of the old size is a subtree the new leaf completes a pair with;
        // after `h` of them, `carry` is the root of the `2^h` leaves ending with the new one.
        let mut size = self.size;
        let mut merged = 0;
        while size & 1 == 1 {
            let left = self.subtrees.pop().expect("one subtree per set bit");
            carry = node_hash(&left, &carry);
            merged += 1;
            if merged == height {
                completed = Some(carry);
            }
            size >>= 1;
        }
        self.subtrees.push(carry);
        self.size += 1;
        completed
    }

    /// The tree's root.
    pub fn root(&self) -> Hash {
        let mut subtrees = self.subtrees.iter().rev();
        let Some(last) = subtrees.next() else {
            return empty_root();
        };
        subtrees.fold(*last, |right, left| node_hash(left, &right))
    }
}
