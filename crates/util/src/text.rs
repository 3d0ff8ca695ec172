//! Checks on text that reaches a command line or a file name.

/// The first control character of `value` (a newline above all), if any:
/// such a value may not reach a job script or an option.
pub fn unsafe_char(value: &str) -> Option<char> {
    value.chars().find(|c| c.is_control())
}

#[cfg(test)]
mod tests {
    #[test]
    fn newlines_and_escapes_are_found() {
        assert_eq!(super::unsafe_char("gpu\ntouch x"), Some('\n'));
        assert_eq!(super::unsafe_char("a\u{1b}[1m"), Some('\u{1b}'));
        assert_eq!(super::unsafe_char("gpu-$(x) 'q'"), None);
    }
}
