//! Exact-byte tests of the subscriber parsers, including every split point of a stream.

use super::*;

#[derive(Debug, PartialEq, Eq)]
enum Got {
    Data(String),
    Resume(String),
    Reset,
}

fn collect(format: Format, input: &[u8]) -> Vec<Got> {
    let mut all = None;
    for split in 0..=input.len() {
        let mut p = Parser::new(format);
        let mut got = Vec::new();
        let mut sink = |i: Item| {
            got.push(match i {
                Item::Data(d) => Got::Data(String::from_utf8_lossy(d).into_owned()),
                Item::Resume(r) => Got::Resume(r.to_owned()),
                Item::Reset => Got::Reset,
            })
        };
        p.feed(&input[..split], &mut sink);
        p.feed(&input[split..], &mut sink);
        if let Some(prev) = &all {
            assert_eq!(prev, &got, "split at {split}");
        }
        all = Some(got);
    }
    all.unwrap_or_default()
}

fn data(s: &str) -> Got {
    Got::Data(s.to_owned())
}

fn resume(s: &str) -> Got {
    Got::Resume(s.to_owned())
}

#[test]
fn sse_from_tidings_and_nchan() {
    let tidings = b"retry: 2000\n\nid: b0~0a1b2c3d4e5f~1\ndata: 0:1:5:x;\n\n: hb\n\n";
    assert_eq!(
        collect(Format::Sse, tidings),
        vec![data("0:1:5:x;"), resume("b0~0a1b2c3d4e5f~1")]
    );
    let nchan = b": hi\r\n\r\nid: 1796048535:0\r\ndata: 0:1:5:x;\r\n\r\n";
    assert_eq!(
        collect(Format::Sse, nchan),
        vec![data("0:1:5:x;"), resume("1796048535:0")]
    );
}

#[test]
fn sse_multi_line_data_and_resets() {
    let s = b"data: a\ndata: b\n\nid: c~e~3\nevent: reset\ndata: {}\n\n";
    assert_eq!(
        collect(Format::Sse, s),
        vec![data("a\nb"), Got::Reset, resume("c~e~3")]
    );
}

#[test]
fn ndjson_envelopes_and_controls() {
    let s = concat!(
        "{\"type\":\"open\",\"cursor\":\"b0~0a1b2c3d4e5f~0\"}\n",
        "{\"channel\":\"b0\",\"epoch\":\"0a1b2c3d4e5f\",\"offset\":1,\"time\":1,\"data\":\"0:1:5:x;\"}\n",
        "{\"type\":\"heartbeat\"}\n",
        "{\"type\":\"reset\",\"channel\":\"b0\",\"epoch\":\"77aa00cc11dd\",\"offset\":0,\"reason\":\"epoch\"}\n",
        "{\"type\":\"reconnect\",\"cursor\":\"b0~77aa00cc11dd~9\"}\n",
    );
    assert_eq!(
        collect(Format::Ndjson, s.as_bytes()),
        vec![
            resume("b0~0a1b2c3d4e5f~0"),
            data("0:1:5:x;"),
            resume("b0~0a1b2c3d4e5f~1"),
            Got::Reset,
            resume("b0~77aa00cc11dd~0"),
            resume("b0~77aa00cc11dd~9"),
        ]
    );
}

#[test]
fn iframe_calls_after_padding() {
    let s = concat!(
        "<!DOCTYPE html><html><body>\n<!--      -->\n",
        "<script>parent.cb({\"type\":\"open\",\"cursor\":\"\"});</script>\n",
        "<script>parent.cb({\"channel\":\"b0\",\"epoch\":\"e1\",\"offset\":7,\"time\":1,\"data\":\"0:7:5:x;\"});</script>\n",
    );
    assert_eq!(
        collect(Format::Iframe, s.as_bytes()),
        vec![data("0:7:5:x;"), resume("b0~e1~7")]
    );
}

#[test]
fn raw_stream_splits_payloads() {
    assert_eq!(
        collect(Format::Raw, b"0:1:5:xx;0:2:6:;"),
        vec![data("0:1:5:xx;"), data("0:2:6:;")]
    );
}

#[test]
fn poll_bodies() {
    let body = concat!(
        "{\"messages\":[{\"channel\":\"b0\",\"epoch\":\"e1\",\"offset\":1,\"time\":1,\"data\":\"0:1:5:;\"},",
        "{\"channel\":\"b0\",\"epoch\":\"e1\",\"offset\":2,\"time\":1,\"data\":\"0:2:5:{};\"}],",
        "\"cursor\":\"b0~e1~2\"}"
    );
    let mut got = Vec::new();
    let n = poll_body(body.as_bytes(), &mut |i| got.push(format!("{i:?}")));
    assert_eq!(n, 2);
    assert_eq!(got.last().map(String::as_str), Some("Resume(\"b0~e1~2\")"));
    assert_eq!(got.len(), 5);
    let mut empty = Vec::new();
    assert_eq!(
        poll_body(br#"{"messages":[],"cursor":"b0~e1~0"}"#, &mut |i| empty
            .push(format!("{i:?}"))),
        0
    );
    assert_eq!(empty, vec!["Resume(\"b0~e1~0\")".to_owned()]);
}

#[test]
fn find_and_fields() {
    assert_eq!(find(b"abcabd", b"abd"), Some(3));
    assert_eq!(find(b"ab", b"abc"), None);
    assert_eq!(json_str(br#"{"a":"x\"y","b":"z"}"#, "b"), Some(&b"z"[..]));
    assert_eq!(json_u64(br#"{"offset":42,"x":1}"#, "offset"), Some(42));
}
