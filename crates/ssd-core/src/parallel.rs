//! A tiny data-parallel map over slices on scoped threads (no thread-pool dependency).

/// Applies `f(index, item)` to every item on all cores — contiguous chunks, one scoped thread
/// each — and returns the results in item order. A panic in `f` is resumed on the caller.
///
/// Used for parsing annotations, writing the synthetic dataset, and by `ssd-eval` for classes and
/// result files.
pub fn parallel_map<T: Sync, R: Send>(items: &[T], f: impl Fn(usize, &T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = items.len().div_ceil(threads).max(1);
    let f = &f;
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .enumerate()
            .map(|(c, part)| {
                scope.spawn(move || {
                    part.iter()
                        .enumerate()
                        .map(|(k, item)| f(c * chunk + k, item))
                        .collect::<Vec<R>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| match h.join() {
                Ok(results) => results,
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_and_indices() {
        let items: Vec<u32> = (0..1001).collect();
        let out = parallel_map(&items, |i, v| (i, v * 2));
        assert_eq!(out.len(), 1001);
        assert!(
            out.iter()
                .enumerate()
                .all(|(i, &(j, v))| i == j && v == 2 * i as u32)
        );
        assert!(parallel_map(&[] as &[u8], |_, v| *v).is_empty());
    }
}
