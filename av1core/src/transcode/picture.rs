//! Fixing pictures before they are encoded, with libavfilter:
//!
//! - **Interlaced** video (DVD, broadcast TV): AV1 has no fields, so an interlaced picture
//!   encoded as it is shows combing on every movement, and no player can remove it
//!   afterwards (the stream says progressive). Pictures flagged interlaced are
//!   deinterlaced with `bwdif` (one picture out per picture in: frame rate and frame
//!   count unchanged; progressive pictures of mixed content pass untouched).
//! - **Turned** video (phones store portrait video as landscape pictures plus a display
//!   matrix that Matroska, as FFmpeg 5.1 writes it, cannot carry): each picture is turned
//!   upright (`transpose`, or `hflip,vflip` for a half turn), as the `ffmpeg` program
//!   does by default.

use std::path::Path;

use ff::format::Pixel;
use ffmpeg_next as ff;

use crate::error::{Error, Result};

/// A filter chain for the pictures of one video stream, applied to them as decoded
/// (before any pixel-format conversion, which would lose the interlacing flags and mix
/// the two fields' chroma).
pub(crate) struct PictureFilter {
    chain: String,
    /// The graph, built for the current pictures' format and size.
    graph: Option<(ff::filter::Graph, (Pixel, u32, u32))>,
}

impl PictureFilter {
    /// `None` when pictures need nothing done.
    pub fn new(deinterlace: bool, clockwise: u16) -> Option<PictureFilter> {
        let mut steps = Vec::new();
        if deinterlace {
            steps.push("bwdif=mode=send_frame:parity=auto:deint=interlaced");
        }
        match clockwise {
            90 => steps.push("transpose=clock"),
            180 => steps.push("hflip,vflip"),
            270 => steps.push("transpose=cclock"),
            _ => {}
        }
        (!steps.is_empty()).then(|| PictureFilter { chain: steps.join(","), graph: None })
    }

    /// Feeds one picture, which carries `pts`, and hands every picture ready (with the
    /// timestamp it carried in) to `out`. The deinterlacer holds one picture back.
    pub fn push(
        &mut self,
        frame: &mut ff::frame::Video,
        pts: i64,
        input: &Path,
        out: &mut dyn FnMut(ff::frame::Video, i64) -> Result<()>,
    ) -> Result<()> {
        let key = (frame.format(), frame.width(), frame.height());
        if self.graph.as_ref().is_some_and(|(_, k)| *k != key) {
            // The pictures changed size or format: empty the old graph first.
            self.finish(input, out)?;
        }
        if self.graph.is_none() {
            self.graph = Some((
                build(&self.chain, key).map_err(Error::ffmpeg("setting up picture filters", input))?,
                key,
            ));
        }
        let (graph, _) = self.graph.as_mut().expect("built just above");
        frame.set_pts(Some(pts));
        graph
            .get("in")
            .expect("the graph has its source")
            .source()
            .add(frame)
            .map_err(Error::ffmpeg("filtering a picture", input))?;
        drain(graph, input, out)
    }

    /// Flushes the pictures held back at the end of the stream.
    pub fn finish(
        &mut self,
        input: &Path,
        out: &mut dyn FnMut(ff::frame::Video, i64) -> Result<()>,
    ) -> Result<()> {
        let Some((mut graph, _)) = self.graph.take() else { return Ok(()) };
        graph
            .get("in")
            .expect("the graph has its source")
            .source()
            .flush()
            .map_err(Error::ffmpeg("filtering a picture", input))?;
        drain(&mut graph, input, out)
    }
}

fn build(
    chain: &str,
    (format, width, height): (Pixel, u32, u32),
) -> std::result::Result<ff::filter::Graph, ff::Error> {
    let mut graph = ff::filter::Graph::new();
    // Timestamps pass through untouched (time base 1/1: they are the decoder's, opaque here).
    let args = format!(
        "video_size={width}x{height}:pix_fmt={}:time_base=1/1:pixel_aspect=1/1",
        ff::ffi::AVPixelFormat::from(format) as i32
    );
    let buffer = ff::filter::find("buffer").ok_or(ff::Error::FilterNotFound)?;
    let sink = ff::filter::find("buffersink").ok_or(ff::Error::FilterNotFound)?;
    graph.add(&buffer, "in", &args)?;
    graph.add(&sink, "out", "")?;
    graph.output("in", 0)?.input("out", 0)?.parse(chain)?;
    graph.validate()?;
    Ok(graph)
}

fn drain(
    graph: &mut ff::filter::Graph,
    input: &Path,
    out: &mut dyn FnMut(ff::frame::Video, i64) -> Result<()>,
) -> Result<()> {
    let mut sink = graph.get("out").expect("the graph has its sink");
    // The deinterlacer counts time in half units (its time base is the input's / 2).
    let time_base = sink.sink().time_base();
    loop {
        let mut frame = ff::frame::Video::empty();
        match sink.sink().frame(&mut frame) {
            Ok(()) => {
                let pts =
                    ff::rescale::Rescale::rescale(&frame.pts().unwrap_or(0), time_base, ff::Rational(1, 1));
                out(frame, pts)?;
            }
            Err(ff::Error::Eof) => return Ok(()),
            Err(ff::Error::Other { errno }) if errno == ff::ffi::EAGAIN => return Ok(()),
            Err(e) => return Err(Error::Ffmpeg { op: "filtering a picture", path: input.into(), source: e }),
        }
    }
}
