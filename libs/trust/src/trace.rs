//! W3C trace context of a call: the client's `traceparent`, continued by the server span
//! when spans are exported, or a trace begun here.

/// The trace a call belongs to. The default is empty; calls always get a real one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TraceContext {
    /// 32 lowercase hex digits.
    pub trace_id: String,
    /// The `traceparent` to store with events: the server span's when spans are
    /// exported, else the client's, or one begun here.
    pub traceparent: String,
}

impl TraceContext {
    /// Accepts a valid version-00 `traceparent`; anything else starts a new trace (a
    /// malformed header is the client's mistake, not a reason to refuse the call).
    pub fn from_header(header: Option<&str>) -> Self {
        Self::received(header).unwrap_or_else(Self::begin)
    }

    /// The client's trace context, when its `traceparent` is a valid version-00 one.
    pub fn received(header: Option<&str>) -> Option<Self> {
        header.and_then(parse)
    }

    /// A new trace, begun here.
    pub fn begin() -> Self {
        let trace_id = uuid::Uuid::new_v4().simple().to_string();
        let span_id = &uuid::Uuid::new_v4().simple().to_string()[..16];
        Self {
            traceparent: format!("00-{trace_id}-{span_id}-01"),
            trace_id,
        }
    }

    /// The trace of a call whose client sent `received` and whose server span has the
    /// context `server_span` (there is one only while spans are exported). The server
    /// span's context wins when it continues the client's trace, or begins one for a
    /// client that sent none: the trace id never changes, only the parent that events
    /// name becomes the server span.
    pub fn of_call(received: Option<Self>, server_span: Option<&str>) -> Self {
        match (received, server_span.and_then(parse)) {
            (Some(client), Some(span)) if span.trace_id != client.trace_id => client,
            (_, Some(span)) => span,
            (Some(client), None) => client,
            (None, None) => Self::begin(),
        }
    }
}

fn parse(header: &str) -> Option<TraceContext> {
    let parts: Vec<&str> = header.trim().split('-').collect();
    let [version, trace_id, span_id, flags] = parts.as_slice() else {
        return None;
    };
    let hex = |s: &str, len: usize| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let valid = *version == "00"
        && hex(trace_id, 32)
        && hex(span_id, 16)
        && hex(flags, 2)
        && trace_id.bytes().any(|b| b != b'0')
        && span_id.bytes().any(|b| b != b'0');
    valid.then(|| TraceContext {
        trace_id: (*trace_id).to_owned(),
        traceparent: header.trim().to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_valid_traceparent_is_kept() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let t = TraceContext::from_header(Some(tp));
        assert_eq!(t.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(t.traceparent, tp);
    }

    #[test]
    fn the_server_span_continues_the_clients_trace() {
        let client = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let server = "00-4bf92f3577b34da6a3ce929d0e0e4736-b7ad6b7169203331-01";
        let t = TraceContext::of_call(TraceContext::received(Some(client)), Some(server));
        assert_eq!(t.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(t.traceparent, server);

        // Never a span of another trace.
        let other = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let t = TraceContext::of_call(TraceContext::received(Some(client)), Some(other));
        assert_eq!(t.traceparent, client);

        // Not exporting: the client's context as received.
        let t = TraceContext::of_call(TraceContext::received(Some(client)), None);
        assert_eq!(t.traceparent, client);
    }

    #[test]
    fn without_a_client_trace_the_server_span_begins_it() {
        let server = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let t = TraceContext::of_call(None, Some(server));
        assert_eq!(t.trace_id, "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(t.traceparent, server);

        let t = TraceContext::of_call(TraceContext::received(Some("garbage")), None);
        assert_eq!(t.trace_id.len(), 32);
        assert_eq!(TraceContext::received(Some(&t.traceparent)), Some(t));
    }

    #[test]
    fn invalid_traceparents_start_a_new_trace() {
        for bad in [
            "",
            "garbage",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            let t = TraceContext::from_header(Some(bad));
            assert_eq!(t.trace_id.len(), 32, "{bad}");
            assert_ne!(t.traceparent, bad);
        }
    }
}
