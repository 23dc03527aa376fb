//! Rep scorecards through the binary on small generated companies whose data are degenerate (issue 13,
//! item 5): lost deals without a rep, and reps who do not differ beyond chance. Each would have given
//! confident nonsense before — every rep 100 % won and ranked, or reps ranked 1 to 20 in id order.
#![allow(clippy::unwrap_used)]

mod common;
use common::winsignal;

use serde_json::Value;
use std::fmt::Write as _;
use std::path::Path;

/// Writes accounts, reps and opportunities (no stage: a stage that only says closed or open would
/// give the win model nothing honest to learn) of a company with `reps` reps and 30 closed deals each,
/// 2 open, alternating between SMB and Enterprise accounts. Rep `k` wins `won(k)` of their 30, spread
/// evenly, or with `None` 15: four in five Enterprise deals and one in five SMB deals (so the win model
/// has something to learn). `lost_rep` says whether lost deals carry the rep.
fn company(dir: &Path, reps: usize, won: Option<&dyn Fn(usize) -> usize>, lost_rep: bool) {
    std::fs::create_dir_all(dir).unwrap();
    let mut accounts = String::from("account_id,name,segment,industry\n");
    for a in 0..100 {
        writeln!(
            accounts,
            "A{a:03},Account {a},{},Software",
            ["SMB", "Enterprise"][a % 2]
        )
        .unwrap();
    }
    let mut rep_rows = String::from("rep_id,name,team,manager_id\n");
    let mut opps =
        String::from("opportunity_id,account_id,rep_id,amount,created_at,closed_at,outcome\n");
    let day = |d: usize| {
        let t = 1_704_067_200 + 86_400 * d as i64; // 2024-01-01 + d days
        common::date_of_secs(t)
    };
    let mut i = 0;
    for k in 0..reps {
        let rep = format!("R{k:02}");
        writeln!(rep_rows, "{rep},Rep {k},Team,M1").unwrap();
        for j in 0..30 {
            let is_won = match won {
                Some(won) => (j * won(k)) / 30 != ((j + 1) * won(k)) / 30,
                None if j % 2 == 1 => j % 10 != 1,
                None => j % 10 == 0,
            };
            let created = (i * 3) % 500;
            writeln!(
                opps,
                "O{i:04},A{:03},{},{},{},{},{}",
                i % 100,
                if is_won || lost_rep { rep.as_str() } else { "" },
                10_000 + 100 * (j % 7),
                day(created),
                day(created + 40 + j % 11),
                if is_won { "won" } else { "lost" }
            )
            .unwrap();
            i += 1;
        }
        for j in 0..2 {
            writeln!(
                opps,
                "O{i:04},A{:03},{rep},,{},,open",
                i % 100,
                day(520 + j)
            )
            .unwrap();
            i += 1;
        }
    }
    std::fs::write(dir.join("accounts.csv"), accounts).unwrap();
    std::fs::write(dir.join("reps.csv"), rep_rows).unwrap();
    std::fs::write(dir.join("opportunities.csv"), opps).unwrap();
}

fn scorecards(dir: &Path) -> (Value, String) {
    let data = dir.join("ws");
    winsignal(&data, &["ingest", dir.join("in").to_str().unwrap()]);
    let json: Value = serde_json::from_str(&winsignal(&data, &["reps", "--json"])).unwrap();
    (json, winsignal(&data, &["reps"]))
}

#[test]
fn lost_deals_without_a_rep_give_no_win_rates_and_say_so_first() {
    let dir = tempfile::tempdir().unwrap();
    company(&dir.path().join("in"), 20, Some(&|k| 12 + k % 7), false);
    let (d, text) = scorecards(dir.path());
    let reps = d["reps"].as_array().unwrap();
    assert_eq!(reps.len(), 20);
    for c in reps {
        assert!(c["rank"].is_null(), "{}: rank {}", c["rep_id"], c["rank"]);
        assert!(c["win"].is_null(), "{}: win {}", c["rep_id"], c["win"]);
    }
    assert!(
        text.starts_with("Note: lost deals carry no rep ("),
        "the warning comes first: {text}"
    );
    assert!(
        !text.contains("100 %"),
        "no rep is shown as winning everything: {text}"
    );
    assert_eq!(d["ranking"]["comparable"], false);
    assert_eq!(d["warnings"][0]["code"], "losses_without_rep");
    for c in reps {
        assert!(c["unranked_reason"]
            .as_str()
            .unwrap()
            .contains("lost deals carry no rep"));
    }
}

#[test]
fn reps_who_do_not_differ_are_all_tied_at_the_top() {
    let dir = tempfile::tempdir().unwrap();
    company(&dir.path().join("in"), 20, Some(&|k| 14 + k % 3), true);
    let (d, text) = scorecards(dir.path());
    assert_eq!(d["win_model"]["between_rep_sd"], 0.0);
    let reps = d["reps"].as_array().unwrap();
    assert_eq!(reps.len(), 20);
    let json_ranks: Vec<&Value> = reps.iter().map(|c| &c["rank"]).collect();
    assert!(reps.iter().all(|c| c["rank"] == 1), "{json_ranks:?}");
    let ranks: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(" Rep "))
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(ranks, vec!["=1"; 20], "{text}");
    assert!(
        text.contains("reps do not differ more than chance would make them"),
        "{text}"
    );
    assert!(reps.iter().all(|c| c["rank_tied"] == true));
    assert_eq!(d["ranking"]["comparable"], true);
    assert_eq!(d["ranking"]["all_tied"], true);
    assert!(d["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|w| w["code"] == "reps_tied"));
}

#[test]
fn open_deals_without_amounts_are_ranked_by_the_chance_of_losing() {
    // The generated company's open deals have no amount. Before the fix every one had 0 at stake and
    // "most at risk" was the id order.
    let dir = tempfile::tempdir().unwrap();
    company(&dir.path().join("in"), 20, None, true);
    let data = dir.path().join("ws");
    winsignal(&data, &["ingest", dir.path().join("in").to_str().unwrap()]);
    winsignal(&data, &["train"]);
    let s: Value = serde_json::from_str(&winsignal(&data, &["score", "--json"])).unwrap();
    let p_win = |id: &str| {
        s["deals"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["opportunity_id"] == id)
            .unwrap()["p_win"]
            .as_f64()
            .unwrap()
    };
    // The text lists the five deals least likely to win, least likely first.
    let text = winsignal(&data, &["score", "--top", "5"]);
    let listed: Vec<f64> = text
        .lines()
        .skip(2)
        .map(|l| p_win(l.split_whitespace().next().unwrap()))
        .collect();
    let mut all: Vec<f64> = s["deals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["p_win"].as_f64().unwrap())
        .collect();
    all.sort_by(f64::total_cmp);
    assert_eq!(listed, all[..5], "{text}");
    assert!(all[0] < all[39], "the deals differ in risk: {all:?}");
    assert!(
        text.contains(
            "most at risk (chance of losing, 1 − P(win), alone: no open deal has an amount):"
        ),
        "{text}"
    );
    let risk = &s["risk"];
    assert_eq!(risk["basis"], "p_loss", "{risk}");
    assert_eq!(risk["with_amount"], 0);
    let ranked = risk["deals"].as_array().unwrap();
    assert_eq!(ranked.len(), 40);
    let p_loss: Vec<f64> = ranked
        .iter()
        .map(|d| d["p_loss"].as_f64().unwrap())
        .collect();
    assert!(p_loss.windows(2).all(|w| w[0] >= w[1]), "{p_loss:?}");
    assert_eq!(
        ranked[0]["opportunity_id"],
        text.lines()
            .nth(2)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
    );
}
