//! A prefix tree over token sequences and the batch schedule that decodes each shared token
//! once. Pure data structure: no model, no I/O.
//!
//! Every tree node is one token. In the schedule, a node's token carries the sequence ids of
//! all leaves below it, so llama.cpp (with a unified KV cache) stores it once and every leaf
//! below attends to it. Nodes are emitted in depth-first pre-order, so each sequence's tokens
//! arrive in position order and a parent always precedes its children.

/// One leaf's answer position in the schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Output {
    /// Which batch of the schedule.
    pub batch: usize,
    /// Index of the token within that batch.
    pub index: usize,
}

/// One decode call of the schedule.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PlannedBatch {
    /// Token ids.
    pub tokens: Vec<i32>,
    /// Positions.
    pub pos: Vec<i32>,
    /// Sequence ids per token (the leaves below the token's node).
    pub seqs: Vec<Vec<i32>>,
    /// Whether to compute the token's logits (true at leaf ends).
    pub logits: Vec<bool>,
}

#[derive(Debug, Clone)]
struct Node {
    token: i32,
    children: Vec<usize>,
    /// Leaves whose sequence ends at this node.
    ends: Vec<usize>,
    /// Leaves at or below this node, ascending.
    below: Vec<i32>,
}

/// A prefix tree over the token sequences of several leaves.
#[derive(Debug, Clone)]
pub struct PrefixTree {
    nodes: Vec<Node>,
    n_leaves: usize,
    total_tokens: usize,
}

impl PrefixTree {
    /// Builds the tree. Empty sequences are not allowed (each leaf needs a last token).
    pub fn new(sequences: &[Vec<i32>]) -> Option<PrefixTree> {
        let mut nodes = vec![Node {
            token: -1,
            children: vec![],
            ends: vec![],
            below: vec![],
        }];
        for (leaf, seq) in sequences.iter().enumerate() {
            if seq.is_empty() {
                return None;
            }
            let mut cur = 0;
            nodes[0].below.push(leaf as i32);
            for &t in seq {
                let next = nodes[cur]
                    .children
                    .iter()
                    .copied()
                    .find(|&c| nodes[c].token == t);
                cur = match next {
                    Some(c) => c,
                    None => {
                        nodes.push(Node {
                            token: t,
                            children: vec![],
                            ends: vec![],
                            below: vec![],
                        });
                        let id = nodes.len() - 1;
                        nodes[cur].children.push(id);
                        id
                    }
                };
                nodes[cur].below.push(leaf as i32);
            }
            nodes[cur].ends.push(leaf);
        }
        Some(PrefixTree {
            nodes,
            n_leaves: sequences.len(),
            total_tokens: sequences.iter().map(Vec::len).sum(),
        })
    }

    /// Number of leaves (sequences).
    pub fn n_leaves(&self) -> usize {
        self.n_leaves
    }

    /// Distinct tokens to decode: the minimum any evaluation of these sequences needs.
    pub fn unique_tokens(&self) -> usize {
        self.nodes.len() - 1
    }

    /// Tokens a one-prompt-at-a-time evaluation would decode.
    pub fn total_tokens(&self) -> usize {
        self.total_tokens
    }

    /// The deepest sequence length.
    pub fn depth(&self) -> usize {
        fn go(t: &PrefixTree, n: usize) -> usize {
            t.nodes[n]
                .children
                .iter()
                .map(|&c| 1 + go(t, c))
                .max()
                .unwrap_or(0)
        }
        go(self, 0)
    }

    /// Splits the depth-first token order into batches of at most `n_batch` tokens, positions
    /// starting at `pos0`. Returns the batches and, per leaf, where its logits come out.
    pub fn schedule(&self, pos0: i32, n_batch: usize) -> (Vec<PlannedBatch>, Vec<Output>) {
        let n_batch = n_batch.max(1);
        let mut batches = vec![PlannedBatch::default()];
        let mut outputs = vec![Output { batch: 0, index: 0 }; self.n_leaves];
        // Explicit stack of (node, depth) for pre-order traversal; children pushed in reverse
        // so they come out in insertion order.
        let mut stack: Vec<(usize, i32)> = self.nodes[0]
            .children
            .iter()
            .rev()
            .map(|&c| (c, 0))
            .collect();
        while let Some((n, depth)) = stack.pop() {
            if batches.last().is_some_and(|b| b.tokens.len() == n_batch) {
                batches.push(PlannedBatch::default());
            }
            let batch_no = batches.len() - 1;
            let b = batches.last_mut().expect("at least one batch");
            let node = &self.nodes[n];
            b.tokens.push(node.token);
            b.pos.push(pos0 + depth);
            b.seqs.push(node.below.clone());
            b.logits.push(!node.ends.is_empty());
            for &leaf in &node.ends {
                outputs[leaf] = Output {
                    batch: batch_no,
                    index: b.tokens.len() - 1,
                };
            }
            stack.extend(node.children.iter().rev().map(|&c| (c, depth + 1)));
        }
        batches.retain(|b| !b.tokens.is_empty());
        (batches, outputs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_prefixes_are_stored_once() {
        let seqs = vec![vec![1, 2, 3, 4], vec![1, 2, 5], vec![1, 2, 3, 6], vec![7]];
        let t = PrefixTree::new(&seqs).unwrap();
        assert_eq!(t.unique_tokens(), 7); // 1 2 3 4 5 6 7
        assert_eq!(t.total_tokens(), 12);
        assert_eq!(t.depth(), 4);
        let (b, out) = t.schedule(10, 100);
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].tokens, vec![1, 2, 3, 4, 6, 5, 7]);
        assert_eq!(b[0].pos, vec![10, 11, 12, 13, 13, 12, 10]);
        assert_eq!(b[0].seqs[0], vec![0, 1, 2]);
        assert_eq!(b[0].seqs[2], vec![0, 2]);
        assert_eq!(b[0].seqs[3], vec![0]);
        assert_eq!(
            b[0].logits,
            vec![false, false, false, true, true, true, true]
        );
        assert_eq!(out[0], Output { batch: 0, index: 3 });
        assert_eq!(out[1], Output { batch: 0, index: 5 });
        assert_eq!(out[2], Output { batch: 0, index: 4 });
        assert_eq!(out[3], Output { batch: 0, index: 6 });
    }

    #[test]
    fn batches_respect_n_batch_and_keep_order() {
        let seqs = vec![vec![1, 2, 3, 4], vec![1, 2, 5]];
        let t = PrefixTree::new(&seqs).unwrap();
        let (b, out) = t.schedule(0, 2);
        assert_eq!(
            b.iter().map(|b| b.tokens.len()).collect::<Vec<_>>(),
            vec![2, 2, 1]
        );
        assert_eq!(out[1], Output { batch: 2, index: 0 });
        let all: Vec<i32> = b.iter().flat_map(|b| b.tokens.clone()).collect();
        assert_eq!(all, vec![1, 2, 3, 4, 5]);
    }

    #[test]
    fn identical_and_nested_sequences_each_get_an_output() {
        let seqs = vec![vec![1, 2], vec![1, 2], vec![1, 2, 3]];
        let t = PrefixTree::new(&seqs).unwrap();
        let (b, out) = t.schedule(0, 8);
        assert_eq!(b[0].tokens, vec![1, 2, 3]);
        assert_eq!(out[0], out[1]);
        assert_eq!(out[0].index, 1);
        assert_eq!(out[2].index, 2);
        assert!(PrefixTree::new(&[vec![]]).is_none());
    }
}
