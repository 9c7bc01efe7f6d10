//! Which build of the extension to compile: the fast one, whose src/ffi.rs reads
//! private CPython layouts reviewed for certain versions, or the portable one,
//! which uses the public C API only. Shared by build.rs (which decides) and the
//! crate's tests (which check the decision).

/// The CPython minor versions (3.x) src/ffi.rs has been reviewed for.
pub const REVIEWED_MINORS: std::ops::RangeInclusive<u8> = 10..=13;

/// The interpreter being built for, as build.rs sees it.
pub struct Target {
    pub cpython: bool,
    pub major: u8,
    pub minor: u8,
    pub free_threaded: bool,
    /// The `portable` cargo feature is on.
    pub portable_feature: bool,
}

/// What to build and why, for `build_info()` and the warning at import.
#[derive(Debug, PartialEq, Eq)]
pub struct Choice {
    pub portable: bool,
    /// "default", "feature" or "automatic".
    pub selected: &'static str,
    pub reason: String,
}

pub fn choose(t: &Target) -> Choice {
    let version = format!("{}.{}", t.major, t.minor);
    let unreviewed = if !t.cpython {
        Some(format!("{version} is not CPython"))
    } else if t.free_threaded {
        Some(format!("CPython {version} is a free-threaded build"))
    } else if t.major != 3 || !REVIEWED_MINORS.contains(&t.minor) {
        Some(format!(
            "src/ffi.rs has not been reviewed for CPython {version} (only 3.{} to 3.{})",
            REVIEWED_MINORS.start(),
            REVIEWED_MINORS.end()
        ))
    } else {
        None
    };
    match (t.portable_feature, unreviewed) {
        (true, _) => Choice {
            portable: true,
            selected: "feature",
            reason: "built with the `portable` cargo feature".to_string(),
        },
        (false, Some(why)) => Choice {
            portable: true,
            selected: "automatic",
            reason: why,
        },
        (false, None) => Choice {
            portable: false,
            selected: "default",
            reason: format!("src/ffi.rs is reviewed for CPython {version}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(minor: u8, free_threaded: bool, feature: bool) -> Target {
        Target {
            cpython: true,
            major: 3,
            minor,
            free_threaded,
            portable_feature: feature,
        }
    }

    #[test]
    fn reviewed_versions_get_the_fast_build() {
        for minor in 10..=13 {
            let c = choose(&target(minor, false, false));
            assert!(!c.portable, "{c:?}");
            assert_eq!(c.selected, "default");
        }
    }

    #[test]
    fn newer_and_free_threaded_pythons_get_the_portable_build_automatically() {
        for (minor, ft) in [(14, false), (15, false), (13, true), (14, true)] {
            let c = choose(&target(minor, ft, false));
            assert!(c.portable, "{c:?}");
            assert_eq!(c.selected, "automatic");
        }
        assert_eq!(
            choose(&target(14, false, false)).reason,
            "src/ffi.rs has not been reviewed for CPython 3.14 (only 3.10 to 3.13)"
        );
        assert_eq!(
            choose(&target(13, true, false)).reason,
            "CPython 3.13 is a free-threaded build"
        );
        let pypy = Target {
            cpython: false,
            ..target(11, false, false)
        };
        assert_eq!(choose(&pypy).selected, "automatic");
    }

    #[test]
    fn the_feature_always_gives_the_portable_build() {
        for (minor, ft) in [(11, false), (14, false), (13, true)] {
            let c = choose(&target(minor, ft, true));
            assert!(c.portable);
            assert_eq!(c.selected, "feature");
        }
    }
}
