//! Call transcripts built from sentence templates, with a talk ratio and a question rate set per rep.

use winsignal_core::rng::Rng;

use crate::world::Turn;

const REP_QUESTIONS: &[&str] = &[
    "What prompted you to look at this now?",
    "How do you measure success for this project?",
    "Who else should be part of the evaluation?",
    "What does your current process look like?",
    "What happens if you do nothing this quarter?",
    "How are you handling forecasting today?",
    "What would a great outcome look like for your team?",
    "When do you need this in place?",
    "Who signs off on a purchase like this?",
    "Which tools are you comparing us against?",
    "Is there a budget set aside for this?",
    "Could we get your CFO on the next call?",
];

const REP_STATEMENTS: &[&str] = &[
    "Let me share my screen and walk you through the dashboard.",
    "Most teams your size get set up in about two weeks.",
    "We connect to Salesforce and your warehouse out of the box.",
    "I will send over a short summary after this call.",
    "That is a common challenge, and here is how others solved it.",
    "Our pricing is per seat, with volume discounts above fifty users.",
    "Security is covered: we are SOC 2 Type II certified.",
    "I can set up a trial workspace for your team today.",
    "Let me show you how the forecast view works.",
    "Good point, I will check with our product team.",
];

const CUSTOMER_LINES: &[&str] = &[
    "Right now we do most of this in spreadsheets.",
    "Our board keeps asking for a more reliable forecast.",
    "We tried another tool last year, and adoption was poor.",
    "I would need to loop in our head of data.",
    "Budget is tight, but this is a priority for us.",
    "The integration with our CRM is the key question.",
    "How long does implementation usually take?",
    "That makes sense.",
    "Can you send me the security documentation?",
    "We are hoping to decide before the end of the quarter.",
    "Our sales team is about forty people.",
    "Sounds good, let us find a time next week.",
];

/// Alternating rep/customer turns filling `duration_s`; about `talk_ratio` of the talking time is the
/// rep's and the rep asks about `questions_per_hour` questions per hour.
pub(crate) fn turns(
    rng: &mut Rng,
    duration_s: u32,
    talk_ratio: f64,
    questions_per_hour: f64,
) -> Vec<Turn> {
    let customer_mean = 22.0;
    let rep_mean = customer_mean * talk_ratio / (1.0 - talk_ratio);
    let total = f64::from(duration_s);
    let expected_rep_turns = (total / (rep_mean + customer_mean)).max(1.0);
    let p_question = (questions_per_hour * total / 3600.0 / expected_rep_turns).min(0.9);
    let mut out = Vec::new();
    let mut t = 0.0;
    let mut rep = true;
    while t < total - 5.0 {
        let mean = if rep { rep_mean } else { customer_mean };
        let len = rng.lognormal(mean, 0.4).clamp(2.0, 180.0).min(total - t);
        let text = if rep {
            if rng.chance(p_question) {
                *rng.pick(REP_QUESTIONS)
            } else {
                *rng.pick(REP_STATEMENTS)
            }
        } else {
            *rng.pick(CUSTOMER_LINES)
        };
        let start = t.round() as u32;
        let end = (t + len).round() as u32;
        out.push(Turn {
            rep,
            start_s: start,
            end_s: end.max(start + 1),
            text: text.to_string(),
        });
        t += len + rng.f64() * 1.5;
        rep = !rep;
    }
    out
}
