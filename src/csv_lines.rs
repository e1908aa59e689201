//! Line numbers for CSV errors, from byte offsets. The csv crate's own line count is one short
//! per CRLF line (measured: the third line of a CRLF file is reported as line 2), so a file
//! saved on Windows would get wrong line numbers; counting `\n` before the record's first
//! character is right for both line ends.

use std::io::Read;

/// A CSV text read into memory with the offset of every line end.
pub struct CsvText {
    /// The bytes, to hand to `csv::Reader`.
    pub data: Vec<u8>,
    newlines: Vec<u64>,
}

impl CsvText {
    /// Reads all of `reader`.
    pub fn read(mut reader: impl Read) -> std::io::Result<CsvText> {
        let mut data = Vec::new();
        reader.read_to_end(&mut data)?;
        let newlines = data
            .iter()
            .enumerate()
            .filter(|(_, &b)| b == b'\n')
            .map(|(i, _)| i as u64)
            .collect();
        Ok(CsvText { data, newlines })
    }

    /// The 1-based line of the first character at or after byte `offset` that is not a line
    /// end (csv reports a CRLF record as starting at the `\n` that ends the line before it).
    pub fn line(&self, offset: u64) -> u64 {
        let mut at = offset as usize;
        while at < self.data.len() && matches!(self.data[at], b'\r' | b'\n') {
            at += 1;
        }
        self.newlines.partition_point(|&p| p < at as u64) as u64 + 1
    }

    /// The 1-based line where a record or an error starts (0 when csv does not say).
    pub fn line_of(&self, position: Option<&csv::Position>) -> u64 {
        position.map_or(0, |p| self.line(p.byte()))
    }
}

/// Most characters of a cell an error message repeats.
pub const MAX_SHOWN: usize = 60;

/// A cell as an error message shows it: whole when short, else its first [`MAX_SHOWN`]
/// characters and how long it was (a 50 MB cell is not echoed into the terminal).
pub fn cut(cell: &str) -> String {
    if cell.chars().count() <= MAX_SHOWN {
        return cell.to_string();
    }
    let head: String = cell.chars().take(MAX_SHOWN).collect();
    format!("{head}... ({} bytes)", cell.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_cells_are_cut() {
        assert_eq!(cut("abc"), "abc");
        let long = "x".repeat(1000);
        assert_eq!(cut(&long), format!("{}... (1000 bytes)", "x".repeat(60)));
    }

    #[test]
    fn lf_and_crlf_files_give_the_same_lines() {
        for text in ["a,b\n1,2\n3,x\n", "a,b\r\n1,2\r\n3,x\r\n"] {
            let t = CsvText::read(text.as_bytes()).unwrap();
            let mut r = csv::Reader::from_reader(&t.data[..]);
            let lines: Vec<u64> = r
                .records()
                .map(|rec| t.line_of(rec.unwrap().position()))
                .collect();
            assert_eq!(lines, vec![2, 3], "{text:?}");
        }
    }
}
