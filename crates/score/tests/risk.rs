//! The order of open deals "most at risk" (issue 13, item 5): by amount × P(loss) when the amounts are
//! there, by P(loss) when most are missing, and never by opportunity id when deals differ in risk.
#![allow(clippy::unwrap_used)]

use winsignal_core::Ts;
use winsignal_score::explain::{rank_by_risk, DealScore, RiskBasis};

fn deal(id: &str, p_win: f64, amount: Option<f64>) -> DealScore {
    DealScore {
        opportunity_id: id.into(),
        account_id: None,
        rep_id: None,
        as_of: Ts(0),
        stage: None,
        age_days: 10.0,
        idle_days: 1.0,
        amount,
        p_win,
        logit: (p_win / (1.0 - p_win)).ln(),
        intercept: 0.0,
        factors: Vec::new(),
        close: None,
        actions: Vec::new(),
    }
}

fn order(scored: &[DealScore]) -> Vec<String> {
    rank_by_risk(scored)
        .deals
        .iter()
        .map(|r| r.opportunity_id.clone())
        .collect()
}

#[test]
fn open_deals_without_amounts_are_ranked_by_the_chance_of_losing() {
    // No open deal has an amount. Before the fix every deal had 0 at stake and the list was in id
    // order, so a deal at 87 % P(win) could head it.
    let scored: Vec<DealScore> = [0.87, 0.12, 0.55, 0.30, 0.95, 0.05]
        .iter()
        .enumerate()
        .map(|(i, p)| deal(&format!("opp{i}"), *p, None))
        .collect();
    let r = rank_by_risk(&scored);
    assert_eq!(r.basis, RiskBasis::PLoss);
    assert_eq!(r.basis.as_str(), "p_loss");
    assert_eq!(r.with_amount, 0);
    assert!(r.note.contains("chance of losing") && r.note.contains("no open deal has an amount"));
    assert_eq!(
        order(&scored),
        ["opp5", "opp1", "opp3", "opp2", "opp0", "opp4"]
    );
    assert!(r.deals.iter().all(|d| d.amount_at_risk.is_none()));
    assert!(r.deals.windows(2).all(|w| w[0].p_loss >= w[1].p_loss));
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["basis"], "p_loss");

    // Amounts of zero are no amounts; a few amounts among many deals do not decide the order either.
    let mut scored = scored;
    scored[4].amount = Some(1_000_000.0);
    scored[0].amount = Some(0.0);
    let r = rank_by_risk(&scored);
    assert_eq!(r.basis, RiskBasis::PLoss);
    assert_eq!(r.with_amount, 1);
    assert!(
        r.note.contains("only 1 of 6 open deals have an amount"),
        "{}",
        r.note
    );
    assert_eq!(order(&scored)[0], "opp5");
}

#[test]
fn amounts_weigh_the_chance_of_losing_and_missing_ones_take_the_median() {
    // Every deal has an amount: expected loss.
    let scored = vec![
        deal("a", 0.9, Some(1_000_000.0)), // 100k at risk
        deal("b", 0.2, Some(50_000.0)),    // 40k
        deal("c", 0.5, Some(300_000.0)),   // 150k
        deal("d", 0.6, Some(100_000.0)),   // 40k, lower P(loss) than b
    ];
    let r = rank_by_risk(&scored);
    assert_eq!(r.basis, RiskBasis::AmountAtRisk);
    assert_eq!(r.basis.as_str(), "amount_at_risk");
    assert_eq!(r.missing_amount_valued_at, None);
    assert_eq!(order(&scored), ["c", "a", "b", "d"]);
    assert!((r.deals[0].amount_at_risk.unwrap() - 150_000.0).abs() < 1e-6);

    // Some missing (fewer than half): valued at the median of the others (200k here), so among them
    // the chance of losing decides, and the note says so.
    let mut scored = scored;
    scored.push(deal("e", 0.1, None)); // 180k at the median
    scored.push(deal("f", 0.7, None)); // 60k at the median
    let r = rank_by_risk(&scored);
    assert_eq!(r.basis, RiskBasis::AmountAtRisk);
    assert_eq!(r.missing_amount_valued_at, Some(200_000.0));
    assert!(r
        .note
        .contains("2 of 6 open deals without an amount valued at the median"));
    assert_eq!(order(&scored), ["e", "c", "a", "f", "b", "d"]);
    let e = r.deals.iter().find(|d| d.opportunity_id == "e").unwrap();
    assert!(e.amount_imputed && e.amount_used == Some(200_000.0));

    // No deals: nothing to rank, no panic.
    let r = rank_by_risk(&[]);
    assert!(r.deals.is_empty());
}
