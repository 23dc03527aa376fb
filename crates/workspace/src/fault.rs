//! Fault injection for tests: named points in the pipeline where a test can stop a command (to commit
//! an ingest in between, say) before letting it go on. Compiled only with the `fault-injection`
//! feature, which the tests enable; release builds have no hook at all.

#[cfg(feature = "fault-injection")]
mod hook {
    use std::sync::{Arc, Mutex};

    type Hook = Arc<dyn Fn(&str) + Send + Sync>;

    static HOOK: Mutex<Option<Hook>> = Mutex::new(None);

    /// Calls `hook` with the name of every point reached, in whatever thread reaches it, until
    /// [`clear_hook`].
    pub fn set_hook(hook: impl Fn(&str) + Send + Sync + 'static) {
        *HOOK.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(hook));
    }

    pub fn clear_hook() {
        *HOOK.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    pub(crate) fn point(name: &str) {
        let hook = HOOK.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(hook) = hook {
            hook(name);
        }
    }
}

#[cfg(feature = "fault-injection")]
pub(crate) use hook::point;
#[cfg(feature = "fault-injection")]
pub use hook::{clear_hook, set_hook};

/// Without the feature a point is nothing.
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub(crate) fn point(_name: &str) {}
