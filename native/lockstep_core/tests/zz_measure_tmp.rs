mod common;
use common::*;
use lockstep_core::*;

fn send(payload: u32) -> Action { Action::Send { to: Target::Parent, payload } }
fn spawn(script: usize) -> Action { Action::Spawn { script, link: false } }

fn w_first(r: &RunResult, w: ProcId, others: &[ProcId]) -> bool {
    let mut sends = 0;
    for e in &r.events {
        if e.proc == w && matches!(e.kind, EventKind::Send{..}) { sends += 1; if sends == 4 { return true; } }
        if others.contains(&e.proc) && !matches!(e.kind, EventKind::Deliver{..}) { return false; }
    }
    false
}

#[test]
fn measure() {
    let kinds = [StrategyKind::Random, StrategyKind::Pos, StrategyKind::Pct(1), StrategyKind::Pct(3)];
    // V1: root spawns W then 3 O; O: send; root receives 7; predicate: first 4 received are W's
    // V2: same program; predicate: W's 4 sends before any O event (trace)
    // V3: O: [Yield, Send]; W's to parent
    // V4: W sends to Outside; O sends to Outside; trace predicate
    // V5: root spawns O,O,O,W (W last), receives
    let variants: Vec<(&str, Program, Box<dyn Fn(&RunResult)->bool>)> = vec![
        ("V1", Program::new(vec![
            [vec![spawn(1), spawn(2), spawn(2), spawn(2)], vec![Action::Receive(Match::Any); 7]].concat(),
            vec![send(1); 4], vec![send(2)]]), Box::new(|r: &RunResult| r.received[0][..4] == [1,1,1,1])),
        ("V2", Program::new(vec![
            [vec![spawn(1), spawn(2), spawn(2), spawn(2)], vec![Action::Receive(Match::Any); 7]].concat(),
            vec![send(1); 4], vec![send(2)]]), Box::new(|r: &RunResult| w_first(r, 1, &[2,3,4]))),
        ("V4", Program::new(vec![
            vec![spawn(1), spawn(2), spawn(2), spawn(2)],
            vec![Action::Send{to: Target::Outside, payload: 1}; 4], vec![Action::Send{to: Target::Outside, payload: 2}]]), Box::new(|r: &RunResult| w_first(r, 1, &[2,3,4]))),
        ("V5", Program::new(vec![
            [vec![spawn(2), spawn(2), spawn(2), spawn(1)], vec![Action::Receive(Match::Any); 7]].concat(),
            vec![send(1); 4], vec![send(2)]]), Box::new(|r: &RunResult| r.received[0][..4] == [1,1,1,1])),
        ("V6", Program::new(vec![
            [vec![spawn(1), spawn(2), spawn(2), spawn(2)], vec![Action::Receive(Match::Any); 7]].concat(),
            vec![send(1); 4], vec![Action::Yield, Action::Yield, send(2)]]), Box::new(|r: &RunResult| w_first(r, 1, &[2,3,4]))),
    ];
    for (name, prog, bug) in &variants {
        for kind in kinds {
            let mut s = kind.build();
            let c = count_bugs(prog, Config::default(), s.as_mut(), 13, 4000, |r| bug(r));
            println!("{name} {kind:?}: {c}/4000");
        }
    }
}
