//! Work shared out among the machine's cores.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Below this many items for each thread, for items of some microseconds of work each (a deal's values
/// or its score), starting a thread costs more than sharing saves.
pub const ITEMS_PER_THREAD: usize = 32;

/// The cores this process may use, asked once: the standard library reads the control group's quota
/// from files each time, which a server sharing out every commit's work should not repeat.
fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// `f` of each of `items`, in their order, worked through by as many threads as the machine has cores,
/// at most one for each `min_per_thread` items (below that, by this thread alone: starting a thread
/// costs more than it saves). The threads take the next few items whenever they come free, so an item
/// that takes long, or a core busy with something else, holds up no other thread.
///
/// `f` must give an item's result from the item alone, whichever thread runs it and whenever: the
/// results are then those of one thread, to the bit. A panic in `f` is carried to the caller.
pub fn share_out<T: Send, R: Send>(
    items: &mut [T],
    min_per_thread: usize,
    f: impl Fn(&mut T) -> R + Sync,
) -> Vec<R> {
    let threads = cores().min(items.len() / min_per_thread.max(1)).max(1);
    if threads == 1 {
        return items.iter_mut().map(f).collect();
    }
    // About eight pieces per thread: small enough to even out, large enough that taking one is cheap.
    let piece = (items.len() / (threads * 8)).clamp(1, 64);
    let pieces: Vec<Mutex<&mut [T]>> = items.chunks_mut(piece).map(Mutex::new).collect();
    let done: Vec<Mutex<Option<Vec<R>>>> = pieces.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let work = || loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(piece) = pieces.get(i) else {
            return;
        };
        let mut piece = piece.lock().unwrap_or_else(|e| e.into_inner());
        let out = piece.iter_mut().map(&f).collect();
        *done[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(out);
    };
    std::thread::scope(|scope| {
        let helpers: Vec<_> = (1..threads).map(|_| scope.spawn(work)).collect();
        work();
        for h in helpers {
            h.join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        }
    });
    done.into_iter()
        .flat_map(|d| {
            d.into_inner()
                .unwrap_or_else(|e| e.into_inner())
                .expect("every piece is worked through before the threads end")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_in_the_items_order_and_items_are_changed_in_place() {
        for n in [0usize, 1, 2, 7, 63, 64, 65, 1000, 4097] {
            let mut items: Vec<u64> = (0..n as u64).collect();
            let out = share_out(&mut items, 1, |x| {
                *x += 1;
                *x * 3
            });
            let want: Vec<u64> = (1..=n as u64).map(|x| x * 3).collect();
            assert_eq!(out, want, "{n} items");
            assert_eq!(
                items,
                (1..=n as u64).collect::<Vec<_>>(),
                "{n} items changed"
            );
        }
    }

    #[test]
    fn uneven_work_still_gives_every_result_in_order() {
        let mut items: Vec<usize> = (0..300).collect();
        let out = share_out(&mut items, 1, |i| {
            if *i % 50 == 0 {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            *i * 2
        });
        assert_eq!(out, (0..300).map(|i| i * 2).collect::<Vec<_>>());
    }

    #[test]
    #[should_panic(expected = "item 77")]
    fn a_panic_reaches_the_caller() {
        let mut items: Vec<usize> = (0..200).collect();
        share_out(&mut items, 1, |i| {
            if *i == 77 {
                panic!("item 77");
            }
            *i
        });
    }
}
