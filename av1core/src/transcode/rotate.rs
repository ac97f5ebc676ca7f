//! Turning pictures upright. Phones store portrait video as landscape pictures and a
//! display matrix (MP4 `tkhd`) that players apply; Matroska as FFmpeg 5.1 writes it has
//! no place for that matrix, so — as the `ffmpeg` program does by default — each picture
//! is turned before it is encoded (libavfilter's `transpose`, or `hflip,vflip` for a
//! half turn), and the result is upright without a matrix.

use std::path::Path;

use ff::format::Pixel;
use ffmpeg_next as ff;

use crate::error::{Error, Result};

/// Turns decoded pictures by a fixed clockwise right angle.
pub(crate) struct Rotator {
    clockwise: u16,
    /// The filter graph, built for the first picture's format and size.
    graph: Option<(ff::filter::Graph, (Pixel, u32, u32))>,
    out: ff::frame::Video,
}

impl Rotator {
    /// `None` when pictures are already upright.
    pub fn new(clockwise: u16) -> Option<Rotator> {
        matches!(clockwise, 90 | 180 | 270).then(|| Rotator {
            clockwise,
            graph: None,
            out: ff::frame::Video::empty(),
        })
    }

    fn filters(&self) -> &'static str {
        match self.clockwise {
            90 => "transpose=clock",
            180 => "hflip,vflip",
            _ => "transpose=cclock",
        }
    }

    /// The turned picture (these filters give one picture per picture, at once).
    pub fn rotate(&mut self, frame: &ff::frame::Video, input: &Path) -> Result<ff::frame::Video> {
        let fail = |op| Error::ffmpeg(op, input);
        let key = (frame.format(), frame.width(), frame.height());
        if self.graph.as_ref().is_none_or(|(_, k)| *k != key) {
            let mut graph = ff::filter::Graph::new();
            let args = format!(
                "video_size={}x{}:pix_fmt={}:time_base=1/1:pixel_aspect=1/1",
                key.1,
                key.2,
                ff::ffi::AVPixelFormat::from(key.0) as i32
            );
            let buffer = ff::filter::find("buffer")
                .ok_or(ff::Error::FilterNotFound)
                .map_err(fail("turning the picture"))?;
            let sink = ff::filter::find("buffersink")
                .ok_or(ff::Error::FilterNotFound)
                .map_err(fail("turning the picture"))?;
            graph.add(&buffer, "in", &args).map_err(fail("setting up the picture turn"))?;
            graph.add(&sink, "out", "").map_err(fail("setting up the picture turn"))?;
            graph
                .output("in", 0)
                .and_then(|p| p.input("out", 0))
                .and_then(|p| p.parse(self.filters()))
                .map_err(fail("setting up the picture turn"))?;
            graph.validate().map_err(fail("setting up the picture turn"))?;
            self.graph = Some((graph, key));
        }
        let (graph, _) = self.graph.as_mut().expect("built just above");
        let mut source = graph.get("in").expect("the graph has its source");
        source.source().add(frame).map_err(fail("turning the picture"))?;
        let mut sink = graph.get("out").expect("the graph has its sink");
        sink.sink().frame(&mut self.out).map_err(fail("turning the picture"))?;
        Ok(std::mem::replace(&mut self.out, ff::frame::Video::empty()))
    }
}
