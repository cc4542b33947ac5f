//! Paths as a person reads them: `samples/../out/reviews` printed as
//! `out/reviews`.
//!
//! Only for what is printed. The files themselves are still opened through
//! the path as given, since `a/link/..` is not `a` when `link` is a symlink.

use std::path::{Component, Path, PathBuf};

/// `path` with `.` dropped and each `dir/..` folded away, lexically.
pub fn normalize(path: &Path) -> PathBuf {
    let mut out: Vec<Component> = Vec::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => match out.last() {
                Some(Component::Normal(_)) => {
                    out.pop();
                }
                // `/..` is `/`.
                Some(Component::RootDir) | Some(Component::Prefix(_)) => {}
                _ => out.push(c),
            },
            _ => out.push(c),
        }
    }
    if out.is_empty() {
        return PathBuf::from(".");
    }
    out.iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_dot_and_dotdot() {
        for (given, want) in [
            ("samples/../out/reviews", "out/reviews"),
            ("./out/./x", "out/x"),
            ("../up/a/../b", "../up/b"),
            ("/a/../../b", "/b"),
            ("a/..", "."),
            ("out/reviews/results.jsonl", "out/reviews/results.jsonl"),
        ] {
            assert_eq!(normalize(Path::new(given)), PathBuf::from(want), "{given}");
        }
    }
}
