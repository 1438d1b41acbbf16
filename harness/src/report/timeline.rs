//! A scenario's timeline as reports draw it: its [`Mark`](crate::events::EventKind::Mark)
//! events sorted into lanes, with spans from `down`/`degraded` to the next `up` and probe
//! failures as ticks. Drawing (SVG) is in `html.rs`; this is only the model, built from the
//! record.

use crate::events::{EventKind, Lane, MarkState};
use crate::runner::{RunRecord, ScenarioRecord};

/// One scenario's marks, in seconds since the scenario started.
#[derive(Debug, Clone, PartialEq)]
pub struct Timeline {
    /// Length of the drawn axis: the scenario's duration, or the last mark if later.
    pub length: f64,
    /// Lanes that have marks, in [`Lane::ALL`] order.
    pub lanes: Vec<LaneRow>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LaneRow {
    pub lane: Lane,
    /// Time the lane spent down or degraded (non-probe lanes).
    pub spans: Vec<Span>,
    /// Failed probes (probe lanes' `down` marks).
    pub ticks: Vec<Point>,
    /// Every other mark, drawn as a dot.
    pub points: Vec<Point>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    pub from: f64,
    pub to: f64,
    pub state: MarkState,
    /// The label of the mark that opened the span.
    pub label: String,
    /// The label of the mark that closed it; `None`: still down when the scenario ended.
    pub closed_by: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub t: f64,
    pub state: MarkState,
    pub label: String,
}

/// The timeline of `sc`, or `None` when it emitted no marks.
pub fn build(record: &RunRecord, sc: &ScenarioRecord) -> Option<Timeline> {
    let marks: Vec<(f64, Lane, MarkState, &str)> = record
        .timeline_of(&sc.id)
        .filter_map(|e| match &e.kind {
            EventKind::Mark {
                lane, state, label, ..
            } => Some((e.t, *lane, *state, label.as_str())),
            _ => None,
        })
        .collect();
    if marks.is_empty() {
        return None;
    }
    // Without a start event (a record cut short), the first mark is the origin.
    let origin = record
        .started_at(&sc.id)
        .unwrap_or_else(|| marks.iter().map(|m| m.0).fold(f64::INFINITY, f64::min));
    let last = marks.iter().map(|m| m.0 - origin).fold(0.0, f64::max);
    let length = sc
        .outcome
        .duration
        .as_secs_f64()
        .max(last)
        .max(f64::EPSILON);
    let mut lanes = Vec::new();
    for lane in Lane::ALL {
        let mut row = LaneRow {
            lane,
            spans: Vec::new(),
            ticks: Vec::new(),
            points: Vec::new(),
        };
        let mut open: Option<Span> = None;
        for &(t, _, state, label) in marks.iter().filter(|m| m.1 == lane) {
            let t = (t - origin).max(0.0);
            let point = Point {
                t,
                state,
                label: label.to_string(),
            };
            if lane.is_probe() {
                match state {
                    MarkState::Down => row.ticks.push(point),
                    _ => row.points.push(point),
                }
                continue;
            }
            match state {
                MarkState::Down | MarkState::Degraded => {
                    if let Some(mut s) = open.take() {
                        if s.state == state {
                            // Still down: the first mark keeps the span.
                            open = Some(s);
                            row.points.push(point);
                            continue;
                        }
                        s.to = t;
                        s.closed_by = Some(label.to_string());
                        row.spans.push(s);
                    }
                    open = Some(Span {
                        from: t,
                        to: length,
                        state,
                        label: label.to_string(),
                        closed_by: None,
                    });
                }
                MarkState::Up => {
                    if let Some(mut s) = open.take() {
                        s.to = t;
                        s.closed_by = Some(label.to_string());
                        row.spans.push(s);
                    }
                    row.points.push(point);
                }
                MarkState::Info => row.points.push(point),
            }
        }
        row.spans.extend(open);
        if !(row.spans.is_empty() && row.ticks.is_empty() && row.points.is_empty()) {
            lanes.push(row);
        }
    }
    Some(Timeline { length, lanes })
}

/// Axis ticks: a round step giving at most ten intervals over `length` seconds.
pub fn axis(length: f64) -> Vec<f64> {
    const STEPS: [f64; 16] = [
        0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0,
    ];
    let step = STEPS
        .iter()
        .copied()
        .find(|s| length / s <= 10.0)
        .unwrap_or_else(|| (length / 10.0).ceil());
    let n = (length / step).floor() as usize;
    (0..=n).map(|i| i as f64 * step).collect()
}
