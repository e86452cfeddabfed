//! Quoting for POSIX shells: every value shipit puts in a shell command or script goes through
//! here. Depends on nothing else in the crate.

/// Quotes one word for a POSIX shell: safe words stay readable, the rest go in single quotes.
pub fn quote(word: &str) -> String {
    let safe = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c));
    if safe {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// Builds a shell command from words, each quoted.
pub fn command<S: AsRef<str>>(words: &[S]) -> String {
    words
        .iter()
        .map(|w| quote(w.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A shell file's body, without its header comment (which is for the reader of the file: the
/// scripts shipit sends, and their plans, stay short).
pub fn without_header(file: &str) -> String {
    file.lines()
        .skip_while(|l| l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_hostile_words() {
        assert_eq!(quote("/opt/app/current"), "/opt/app/current");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), "'it'\\''s'");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("$(rm -rf /)"), "'$(rm -rf /)'");
        assert_eq!(command(&["echo", "a;b", "c"]), "echo 'a;b' c");
    }

    #[test]
    fn quoted_words_round_trip_through_sh() {
        for word in ["a b", "it's", "$(id)", "`id`", "a\nb", "\\", "*", "-n"] {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("printf %s {}", quote(word)))
                .output()
                .unwrap();
            assert_eq!(String::from_utf8_lossy(&out.stdout), word);
        }
    }
}
