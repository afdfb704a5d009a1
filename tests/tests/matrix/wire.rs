//! Raw HTTP/1 over TCP: requests are written byte for byte (so that malformed headers
//! reach the server as they are), and responses are read until the server closes the
//! connection, then parsed by hand.

use std::{fmt, net::SocketAddr, time::Duration};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// No case may take longer; a server that neither answers nor closes fails its case.
const CASE_TIMEOUT: Duration = Duration::from_secs(10);

/// What a server did with one request, reduced to what the matrix compares.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Reply {
    /// A response.
    Response(Answer),
    /// The connection was closed (or reset) before a single response byte.
    Closed,
    /// Bytes came back that are not an HTTP/1 response.
    Garbled(String),
    /// Neither a response nor a close within [`CASE_TIMEOUT`].
    TimedOut,
}

/// The parts of a response the matrix compares. Other headers (`date`,
/// `content-length`, `connection`) are framing and differ between servers.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    /// Every `Content-Type` value, in order.
    pub(crate) content_type: Vec<Vec<u8>>,
    /// Every `WWW-Authenticate` value, in order.
    pub(crate) www_authenticate: Vec<Vec<u8>>,
    pub(crate) body: Vec<u8>,
}

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Response(answer) => answer.fmt(f),
            Self::Closed => f.write_str("connection closed, no response"),
            Self::Garbled(why) => write!(f, "not an HTTP response: {why}"),
            Self::TimedOut => write!(f, "no answer in {CASE_TIMEOUT:?}"),
        }
    }
}

impl fmt::Debug for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.status)?;
        for value in &self.content_type {
            write!(f, " ct={}", show(value))?;
        }
        for value in &self.www_authenticate {
            write!(f, " www={}", show(value))?;
        }
        write!(f, " body={}", show(&self.body))
    }
}

/// Bytes as text, with anything but printable ASCII escaped.
pub(crate) fn show(bytes: &[u8]) -> String {
    bytes.escape_ascii().to_string()
}

/// Sends `request` on a new connection and reads until the server closes it.
///
/// The request is written while the response is read, and a write error is ignored: a
/// server that refuses an oversized head answers and closes before it has read it all.
pub(crate) async fn exchange(addr: SocketAddr, request: &[u8]) -> Reply {
    match tokio::time::timeout(CASE_TIMEOUT, raw_exchange(addr, request)).await {
        Ok(Ok(bytes)) => parse(&bytes),
        Ok(Err(error)) => Reply::Garbled(format!("connect failed: {error}")),
        Err(_) => Reply::TimedOut,
    }
}

async fn raw_exchange(addr: SocketAddr, request: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (mut reader, mut writer) = stream.split();
    let write = async {
        // Not shut down after writing: hyper would take the half-close for the client
        // going away. The request's `Connection: close` (or HTTP/1.0) ends the exchange.
        let _ = writer.write_all(request).await;
    };
    let read = async {
        let mut received = Vec::new();
        let mut chunk = vec![0; 64 * 1024];
        loop {
            match reader.read(&mut chunk).await {
                // A reset after the response (unread request bytes on the server's
                // side) ends the exchange like a close: what came before is kept.
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&chunk[..n]),
            }
        }
        received
    };
    let ((), received) = tokio::join!(write, read);
    Ok(received)
}

/// Parses one HTTP/1 response: status line, headers, then a body framed by
/// `Content-Length`, chunked, or by the close.
pub(crate) fn parse(bytes: &[u8]) -> Reply {
    if bytes.is_empty() {
        return Reply::Closed;
    }
    match parse_response(bytes) {
        Ok(answer) => Reply::Response(answer),
        Err(why) => Reply::Garbled(format!("{why}: {}", show(&bytes[..bytes.len().min(200)]))),
    }
}

fn parse_response(bytes: &[u8]) -> Result<Answer, &'static str> {
    let end = find(bytes, b"\r\n\r\n").ok_or("no end of head")?;
    let head = &bytes[..end];
    let rest = &bytes[end + 4..];
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line));
    let status_line = lines.next().ok_or("no status line")?;
    let status = match status_line {
        [
            b'H',
            b'T',
            b'T',
            b'P',
            b'/',
            b'1',
            b'.',
            b'0' | b'1',
            b' ',
            a,
            b,
            c,
            ..,
        ] if [a, b, c].iter().all(|d| d.is_ascii_digit()) => {
            u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0')
        }
        _ => return Err("bad status line"),
    };
    let mut answer = Answer {
        status,
        content_type: Vec::new(),
        www_authenticate: Vec::new(),
        body: Vec::new(),
    };
    let mut content_length = None;
    let mut chunked = false;
    for line in lines {
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or("header without colon")?;
        let name = line[..colon].to_ascii_lowercase();
        let value = line[colon + 1..].trim_ascii().to_vec();
        match name.as_slice() {
            b"content-type" => answer.content_type.push(value),
            b"www-authenticate" => answer.www_authenticate.push(value),
            b"content-length" => {
                let text = std::str::from_utf8(&value).map_err(|_| "bad content-length")?;
                content_length = Some(text.parse::<usize>().map_err(|_| "bad content-length")?);
            }
            b"transfer-encoding" => chunked = value.eq_ignore_ascii_case(b"chunked"),
            _ => {}
        }
    }
    answer.body = if chunked {
        dechunk(rest)?
    } else if let Some(length) = content_length {
        rest.get(..length)
            .ok_or("body shorter than content-length")?
            .to_vec()
    } else {
        rest.to_vec()
    };
    Ok(answer)
}

fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>, &'static str> {
    let mut body = Vec::new();
    loop {
        let line_end = find(rest, b"\r\n").ok_or("chunk size without CRLF")?;
        let size_text = std::str::from_utf8(&rest[..line_end]).map_err(|_| "bad chunk size")?;
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| "bad chunk size")?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Ok(body);
        }
        body.extend_from_slice(rest.get(..size).ok_or("chunk shorter than its size")?);
        rest = rest.get(size + 2..).ok_or("chunk without CRLF")?;
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[test]
fn parses_content_length_chunked_and_close_delimited_bodies() {
    let sized = b"HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nwww-authenticate: Bearer\r\ncontent-length: 2\r\n\r\n{}";
    let Reply::Response(answer) = parse(sized) else {
        panic!("{:?}", parse(sized))
    };
    assert_eq!(answer.status, 401);
    assert_eq!(answer.content_type, [b"application/json".to_vec()]);
    assert_eq!(answer.www_authenticate, [b"Bearer".to_vec()]);
    assert_eq!(answer.body, b"{}");

    let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n";
    let Reply::Response(answer) = parse(chunked) else {
        panic!()
    };
    assert_eq!(answer.body, b"abcde");

    let close = b"HTTP/1.0 200 OK\r\n\r\nuntil close";
    let Reply::Response(answer) = parse(close) else {
        panic!()
    };
    assert_eq!(answer.body, b"until close");

    assert_eq!(parse(b""), Reply::Closed);
    assert!(matches!(parse(b"HTTP/1.1 20"), Reply::Garbled(_)));
}
