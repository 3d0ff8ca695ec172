//! Exact expected spreads on tiny graphs, for tests: every live-edge graph
//! enumerated.

/// The exact expected spread by enumerating all 2^m live-edge graphs.
pub fn spread(offsets: &[u64], targets: &[u32], p: &[f32], seeds: &[u32]) -> f64 {
    let (n, m) = (offsets.len() - 1, targets.len());
    let mut total = 0.0;
    for live in 0u32..1 << m {
        let mut prob = 1.0;
        for (e, &pe) in p.iter().enumerate() {
            prob *= if live >> e & 1 == 1 { pe as f64 } else { 1.0 - pe as f64 };
        }
        let mut reached = vec![false; n];
        let mut stack: Vec<u32> = seeds.to_vec();
        seeds.iter().for_each(|&s| reached[s as usize] = true);
        while let Some(u) = stack.pop() {
            let (a, b) = (offsets[u as usize] as usize, offsets[u as usize + 1] as usize);
            for (e, &v) in targets.iter().enumerate().take(b).skip(a) {
                let v = v as usize;
                if live >> e & 1 == 1 && !reached[v] {
                    reached[v] = true;
                    stack.push(v as u32);
                }
            }
        }
        total += prob * reached.iter().filter(|&&r| r).count() as f64;
    }
    total
}
