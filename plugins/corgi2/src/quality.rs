//! How well an order is shuffled, and how heterogeneous the stored blocks are.

use tessera_sdk::{
    observation, params, Array, Checkpoint, Component, Error, Host, Metric, ObservationRequest, Observations, Report,
    Result, State,
};

/// Block heterogeneity h_D, with one-hot labels as the gradient proxy:
/// h_D = b · (1/N) Σ_l ‖ḡ_l − ḡ‖² / σ², where ḡ_l is the mean one-hot label of
/// block l, ḡ the overall mean, σ² = (1/n) Σ_i ‖g_i − ḡ‖² = 1 − Σ_c p_c², and b
/// the (largest) block size. About 1 for shuffled blocks, about b when each
/// block holds one class.
pub fn block_heterogeneity(labels: &[i64], blocks: &[i64], classes: usize) -> f64 {
    let n = labels.len();
    if n == 0 || classes == 0 {
        return 0.0;
    }
    let mut overall = vec![0.0; classes];
    let mut per_block: std::collections::BTreeMap<i64, (Vec<f64>, f64)> = Default::default();
    for (&y, &b) in labels.iter().zip(blocks) {
        overall[y as usize] += 1.0;
        let entry = per_block.entry(b).or_insert_with(|| (vec![0.0; classes], 0.0));
        entry.0[y as usize] += 1.0;
        entry.1 += 1.0;
    }
    overall.iter_mut().for_each(|p| *p /= n as f64);
    let sigma2 = 1.0 - overall.iter().map(|p| p * p).sum::<f64>();
    if sigma2 <= 0.0 {
        return 1.0;
    }
    let b = per_block.values().map(|(_, size)| *size).fold(0.0, f64::max);
    let spread = per_block
        .values()
        .map(|(counts, size)| counts.iter().zip(&overall).map(|(c, p)| (c / size - p).powi(2)).sum::<f64>())
        .sum::<f64>()
        / per_block.len() as f64;
    b * spread / sigma2
}

/// Shannon entropy (bits) of the gaps |v_{t+1} − v_t| between consecutive
/// values (Mosaic streaming's shuffle-quality measure): 0 for a sequential
/// order, high for a well-mixed one.
pub fn gap_entropy(values: &[i64]) -> f64 {
    if values.len() < 2 {
        return 0.0;
    }
    let mut counts: std::collections::BTreeMap<u64, u64> = Default::default();
    for w in values.windows(2) {
        *counts.entry(w[1].abs_diff(w[0])).or_default() += 1;
    }
    entropy(counts.values().copied(), (values.len() - 1) as f64)
}

fn entropy(counts: impl Iterator<Item = u64>, total: f64) -> f64 {
    -counts.filter(|&c| c > 0).map(|c| c as f64 / total).map(|p| p * p.log2()).sum::<f64>()
}

/// Kendall τ between visiting position and stored position: 1 for the stored
/// order, −1 reversed, near 0 shuffled. O(n log n) (inversions by merge sort).
pub fn kendall_tau(order: &[i64]) -> f64 {
    let n = order.len();
    if n < 2 {
        return 1.0;
    }
    fn sort_count(v: &mut [i64], buffer: &mut Vec<i64>) -> u64 {
        let n = v.len();
        if n < 2 {
            return 0;
        }
        let mid = n / 2;
        let mut inversions = sort_count(&mut v[..mid], buffer) + sort_count(&mut v[mid..], buffer);
        buffer.clear();
        let (mut i, mut j) = (0, mid);
        while i < mid && j < n {
            if v[i] <= v[j] {
                buffer.push(v[i]);
                i += 1;
            } else {
                buffer.push(v[j]);
                inversions += (mid - i) as u64;
                j += 1;
            }
        }
        buffer.extend_from_slice(&v[i..mid]);
        buffer.extend_from_slice(&v[j..n]);
        v.copy_from_slice(buffer);
        inversions
    }
    let mut copy = order.to_vec();
    let inversions = sort_count(&mut copy, &mut Vec::with_capacity(n));
    1.0 - 4.0 * inversions as f64 / (n as f64 * (n as f64 - 1.0))
}

/// Mean Shannon entropy (bits) of the label histogram over consecutive
/// windows of `window` visited examples: log2(C) is perfectly mixed, 0 is one
/// class per window.
pub fn window_label_entropy(order: &[i64], labels: &[i64], window: usize) -> f64 {
    let windows: Vec<f64> = order
        .chunks(window.max(1))
        .filter(|w| w.len() == window.max(1) || order.len() < window)
        .map(|w| {
            let mut counts: std::collections::BTreeMap<i64, u64> = Default::default();
            for &id in w {
                *counts.entry(labels[id as usize]).or_default() += 1;
            }
            entropy(counts.values().copied(), w.len() as f64)
        })
        .collect();
    if windows.is_empty() {
        0.0
    } else {
        windows.iter().sum::<f64>() / windows.len() as f64
    }
}

params! {
    /// Parameters of [`OrderQuality`].
    pub struct OrderQualityParams {
        /// Window of consecutive examples for the label entropy.
        pub window: u64 = 64,
        /// Save each measured epoch's visiting order, the labels and the
        /// block ids as arrays (8 bytes an example an epoch).
        pub save_orders: bool = true,
    }
}

/// Shuffle quality of each epoch's order, and h_D of the stored blocks.
pub struct OrderQuality {
    window: usize,
    h_d: Option<f64>,
    epochs: Vec<f64>,
    measures: [Vec<f64>; 4],
    /// Each measured epoch's order, the labels and block ids (when saved).
    saved: Option<SavedOrders>,
}

/// The raw data behind the measures.
#[derive(Default)]
struct SavedOrders {
    orders: Vec<i64>,
    labels: Vec<i64>,
    blocks: Vec<i64>,
}

const MEASURES: [&str; 4] = ["id_gap_entropy", "block_gap_entropy", "kendall_tau", "window_label_entropy"];

/// The measures the paper's comparison reads (with h_D): how far the order
/// is from the stored one, and how mixed the labels are in a window.
const HEADLINES: [&str; 2] = ["kendall_tau", "window_label_entropy"];

impl Component for OrderQuality {
    /// h_D, the measures of the epochs so far and the orders kept.
    fn save_state(&self) -> Result<State> {
        let saved = self.saved.as_ref().map(|s| (&s.orders, &s.labels, &s.blocks));
        State::encode(&(self.h_d, &self.epochs, &self.measures, saved))
    }

    fn load_state(&mut self, bytes: &[u8]) -> Result<()> {
        type Saved = (Option<f64>, Vec<f64>, [Vec<f64>; 4], Option<(Vec<i64>, Vec<i64>, Vec<i64>)>);
        let (h_d, epochs, measures, saved) = State::decode::<Saved>(bytes)?;
        (self.h_d, self.epochs, self.measures) = (h_d, epochs, measures);
        self.saved = saved.map(|(orders, labels, blocks)| SavedOrders { orders, labels, blocks });
        Ok(())
    }

    const NAME: &'static str = "order-quality";
    const SUMMARY: &'static str =
        "h_D of the stored blocks; gap entropies, Kendall tau and window label entropy of each epoch's order.";
    type Params = OrderQualityParams;

    fn new(params: OrderQualityParams) -> Result<Self> {
        if params.window == 0 {
            return Err(Error::invalid_param("window", "must be at least 1"));
        }
        Ok(OrderQuality {
            window: params.window as usize,
            h_d: None,
            epochs: vec![],
            measures: Default::default(),
            saved: params.save_orders.then(SavedOrders::default),
        })
    }
}

impl Metric for OrderQuality {
    fn requires(&self) -> Vec<ObservationRequest> {
        [observation::ORDER, observation::LABELS, observation::BLOCK_IDS]
            .iter()
            .map(|kind| ObservationRequest::new("train", kind))
            .collect()
    }

    fn observe(&mut self, checkpoint: &Checkpoint, observations: &Observations, _host: &Host) -> Result<()> {
        let labels = observations.i64("train", observation::LABELS)?;
        if self.h_d.is_none() {
            let blocks = observations.i64("train", observation::BLOCK_IDS)?;
            let classes = labels.iter().max().map_or(0, |&m| m as usize + 1);
            self.h_d = Some(block_heterogeneity(labels, blocks, classes));
        }
        let order = observations.i64("train", observation::ORDER)?;
        // Measure whole epochs only: at each epoch's end the order is complete.
        if checkpoint.epoch.fract() != 0.0 || order.len() != labels.len() {
            return Ok(());
        }
        let blocks = observations.i64("train", observation::BLOCK_IDS)?;
        let visited_blocks: Vec<i64> = order.iter().map(|&id| blocks[id as usize]).collect();
        let values = [
            gap_entropy(order),
            gap_entropy(&visited_blocks),
            kendall_tau(order),
            window_label_entropy(order, labels, self.window),
        ];
        self.epochs.push(checkpoint.epoch);
        if let Some(saved) = self.saved.as_mut() {
            saved.orders.extend_from_slice(order);
            if saved.labels.is_empty() {
                // The stored examples' labels and blocks do not change between epochs.
                (saved.labels, saved.blocks) = (labels.to_vec(), blocks.to_vec());
            }
        }
        for (series, value) in self.measures.iter_mut().zip(values) {
            series.push(value);
        }
        Ok(())
    }

    fn finish(&mut self, _host: &Host) -> Result<Report> {
        let mut report = Report::new();
        report.defined_headline("h_d", self.h_d.unwrap_or(f64::NAN));
        for (name, series) in MEASURES.iter().zip(&self.measures) {
            match series.last() {
                Some(&last) if HEADLINES.contains(name) => report.headline(name, last),
                Some(&last) => report.scalar(name, last),
                None => &mut report,
            };
            report.series(name, "epoch", name, self.epochs.clone(), series.clone());
        }
        if let Some(saved) = self.saved.take().filter(|s| !s.labels.is_empty()) {
            let (epochs, n) = (self.epochs.len() as u64, saved.labels.len() as u64);
            report.array("orders", Array::i64(vec![epochs, n], saved.orders));
            report.array("labels", Array::i64(vec![n], saved.labels));
            report.array("block_ids", Array::i64(vec![n], saved.blocks));
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_sdk::SeedRng;

    #[test]
    fn h_d_is_b_for_one_class_blocks_and_near_one_when_shuffled() {
        let (n, b, classes) = (10_000usize, 100usize, 10usize);
        let sorted: Vec<i64> = (0..n).map(|i| (i * classes / n) as i64).collect();
        let blocks: Vec<i64> = (0..n).map(|i| (i / b) as i64).collect();
        assert!((block_heterogeneity(&sorted, &blocks, classes) - b as f64).abs() < 1e-9);
        let mut shuffled = sorted.clone();
        SeedRng::new(0).shuffle(&mut shuffled);
        let h = block_heterogeneity(&shuffled, &blocks, classes);
        assert!((0.7..1.3).contains(&h), "{h}");
    }

    #[test]
    fn order_measures_separate_sequential_from_shuffled() {
        let n = 5000;
        let sequential: Vec<i64> = (0..n).collect();
        let mut shuffled = sequential.clone();
        SeedRng::new(1).shuffle(&mut shuffled);
        let reversed: Vec<i64> = sequential.iter().rev().copied().collect();
        assert_eq!(gap_entropy(&sequential), 0.0);
        assert!(gap_entropy(&shuffled) > 10.0);
        assert_eq!(kendall_tau(&sequential), 1.0);
        assert_eq!(kendall_tau(&reversed), -1.0);
        assert!(kendall_tau(&shuffled).abs() < 0.05);
        // τ from the definition on a small case: (1 concordant − 2 discordant) / 3.
        assert!((kendall_tau(&[1, 0, 2]) - (1.0 / 3.0)).abs() < 1e-12);
        let labels: Vec<i64> = (0..n).map(|i| i * 4 / n).collect(); // sorted, 4 classes
        assert_eq!(window_label_entropy(&sequential, &labels, 50), 0.0);
        assert!(window_label_entropy(&shuffled, &labels, 50) > 1.8);
    }

    #[test]
    fn the_metric_saves_each_epochs_order_with_labels_and_blocks() {
        use tessera_sdk::testing::{self, TestHost};
        let mut metric = OrderQuality::new(OrderQualityParams { window: 2, save_orders: true }).unwrap();
        let host = TestHost::new(0);
        for (epoch, order) in [(1, vec![3, 2, 1, 0]), (2, vec![0, 2, 1, 3])] {
            let items = [
                testing::i64_observation("train", observation::ORDER, order),
                testing::i64_observation("train", observation::LABELS, vec![0, 0, 1, 1]),
                testing::i64_observation("train", observation::BLOCK_IDS, vec![0, 0, 1, 1]),
            ];
            metric.observe(&testing::checkpoint(epoch), &testing::observations(&items), &host.host()).unwrap();
        }
        let report = metric.finish(&host.host()).unwrap();
        let array = |name: &str| &report.arrays.iter().find(|a| a.name.as_str() == name).unwrap().array;
        assert_eq!(array("orders").shape.as_slice(), &[2, 4]);
        assert_eq!(array("orders").as_i64().unwrap(), &[3, 2, 1, 0, 0, 2, 1, 3]);
        assert_eq!(array("block_ids").as_i64().unwrap(), &[0, 0, 1, 1]);
        let kendall = report.series.iter().find(|s| s.name.as_str() == "kendall_tau").unwrap();
        assert_eq!(kendall.y[0], -1.0, "the reversed order");
    }
}
