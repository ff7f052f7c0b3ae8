//! The lead of an adaptive download: one request for the rest of the blob, read by the
//! forwarder straight into the extractor, as one stream is. The time spent waiting for its
//! bytes is measured as they arrive; once the network is seen to be the limit
//! ([`SPLIT_AFTER`] network-bound [`STARVED`]s), the lead is cut one chunk past what it has
//! received, the driver is told where the ranges start, and the lead is read up to the cut.
//! A lead that fails is asked again for its missing bytes, like a range.

use std::ops::Range;
use std::time::Instant;

use futures_util::StreamExt;
use tokio::sync::oneshot;

#[cfg(doc)]
use super::STARVED;
use super::{Answer, PassOn, RangedBlob, SPLIT_AFTER, again, ended_early};
use crate::client::{BlobResponse, RegistryError};
use crate::layer::download::{DownloadError, Stalls};

/// Where a lead ended.
pub(super) enum End {
    /// At the blob's end: it was never split.
    Blob,
    /// At its cut: the ranges go on from there.
    Cut(u64),
    /// The registry answered it with something other than the range asked (see
    /// [`Stop::NoRanges`](super::Stop::NoRanges)): go on as one stream from `at`.
    NoRanges {
        at: u64,
        response: Option<BlobResponse>,
    },
}

/// Why reading a lead's body stopped short.
enum Failure {
    /// The registry or the connection failed: worth asking again.
    Registry(RegistryError),
    /// The download cannot go on (the extractor stopped, the speed floor).
    Download(DownloadError),
}

/// A lead being read: the span still to come, and the driver to tell once it is split.
struct Lead {
    span: Range<u64>,
    split: Option<oneshot::Sender<u64>>,
    /// Network-bound [`STARVED`]s waited since the first byte.
    starved: u32,
}

impl RangedBlob<'_> {
    /// Read the blob from `from` as one request, passing its bytes on, until its end or,
    /// once split (`split` told where), its cut.
    pub(super) async fn lead(
        &self,
        from: u64,
        split: oneshot::Sender<u64>,
        pass: &mut PassOn<'_>,
    ) -> Result<End, DownloadError> {
        let mut lead = Lead {
            span: from..self.layer.size,
            split: Some(split),
            starved: 0,
        };
        let mut stalls = Stalls::default();
        loop {
            let before = lead.span.start;
            let failure = match self.open(lead.span.clone()).await {
                Ok(Answer::Range(resp)) => match self.read_lead(resp, &mut lead, pass).await {
                    Ok(()) if lead.split.is_some() => return Ok(End::Blob),
                    Ok(()) => return Ok(End::Cut(lead.span.end)),
                    Err(Failure::Registry(e)) => e,
                    Err(Failure::Download(e)) => return Err(e),
                },
                Ok(Answer::Other(response)) => {
                    let at = lead.span.start;
                    return Ok(End::NoRanges { at, response });
                }
                Err(e) => e,
            };
            let progressed = lead.span.start > before;
            again(failure, progressed, &mut stalls, lead.span.clone())
                .await
                .map_err(DownloadError::Registry)?;
        }
    }

    /// Read one answer's body for `lead` up to its end, splitting it when the network is
    /// the limit.
    async fn read_lead(
        &self,
        resp: BlobResponse,
        lead: &mut Lead,
        pass: &mut PassOn<'_>,
    ) -> Result<(), Failure> {
        let url = resp.response.url().to_string();
        let mut body = resp.response.bytes_stream();
        let mut asked = Instant::now();
        while lead.span.start < lead.span.end {
            let Some(next) = body.next().await else {
                return Err(Failure::Registry(ended_early(
                    url,
                    lead.span.start,
                    lead.span.end,
                )));
            };
            let ticks = pass.waits.waited(asked.elapsed());
            let mut bytes =
                next.map_err(|e| Failure::Registry(crate::client::network_error(&url, &e)))?;
            let left = lead.span.end - lead.span.start;
            bytes.truncate(left.min(bytes.len() as u64) as usize);
            if !bytes.is_empty() {
                lead.span.start += bytes.len() as u64;
                pass.send(self, bytes, lead.span.start)
                    .await
                    .map_err(Failure::Download)?;
            }
            self.starved_on_lead(lead, ticks);
            asked = Instant::now();
        }
        Ok(())
    }

    /// Count `ticks` network-bound waits on the lead: split it once there are enough, then
    /// (while it is read up to its cut) widen the ranges' window.
    fn starved_on_lead(&self, lead: &mut Lead, ticks: u32) {
        lead.starved += ticks;
        if lead.split.is_none() {
            self.starve(ticks);
            return;
        }
        if lead.starved < SPLIT_AFTER {
            return;
        }
        let chunk = self.options.chunk_size;
        let cut = lead.span.start.saturating_add(chunk);
        if cut.saturating_add(chunk) > lead.span.end {
            // Too little left to be worth ranges: read on to the end.
            return;
        }
        if let Some(split) = lead.split.take() {
            lead.span.end = cut;
            // The driver is gone only when the download is.
            let _ = split.send(cut);
        }
    }
}
