mod common;
use common::*;
use lockstep_core::*;

fn send(payload: u32) -> Action { Action::Send { to: Target::Parent, payload } }
fn spawn(script: usize) -> Action { Action::Spawn { script, link: false } }

#[test]
fn measure() {
    let n = 4;
    let mut scripts = vec![vec![]];
    for i in 1..=n { scripts[0].push(spawn(i)); scripts.push(vec![send(i as u32)]); }
    for _ in 0..n { scripts[0].push(Action::Receive(Match::Any)); }
    let prog = Program::new(scripts);
    for kind in [StrategyKind::Pct(1), StrategyKind::Random, StrategyKind::Pos] {
        let mut s = kind.build();
        let last = count_bugs(&prog, Config::default(), s.as_mut(), 7, 2000, |r| r.received[0].last() == Some(&1));
        let mut s = kind.build();
        let first = count_bugs(&prog, Config::default(), s.as_mut(), 7, 2000, |r| r.received[0].first() == Some(&(n as u32)));
        println!("A {kind:?}: P.1 last {last}/2000, P.{n} first {first}/2000");
    }
    for m in [4usize, 6, 8] {
        let a = vec![send(1); m];
        let b = vec![send(2); m];
        let mut root = vec![spawn(1), spawn(2)];
        root.extend(vec![Action::Receive(Match::Any); 2 * m]);
        let prog = Program::new(vec![root, a, b]);
        let mut want = vec![1u32];
        want.extend(vec![2; m]);
        want.extend(vec![1; m - 1]);
        for kind in [StrategyKind::Random, StrategyKind::Pct(1), StrategyKind::Pct(2), StrategyKind::Pct(3), StrategyKind::Pos, StrategyKind::IdPct{d_min:2,d_max:6}, StrategyKind::FairPct{depth:2, switch_after: 1000}] {
            let mut s = kind.build();
            let c = count_bugs(&prog, Config::default(), s.as_mut(), 11, 2000, |r| r.received[0] == want);
            println!("B m={m} {kind:?}: {c}/2000");
        }
    }
    for others in [3usize] {
        let w = vec![send(1); 4];
        let mut root = vec![spawn(1)];
        for _ in 0..others { root.push(spawn(2)); }
        root.extend(vec![Action::Receive(Match::Any); 4 + others]);
        let prog = Program::new(vec![root, w, vec![send(2)]]);
        for kind in [StrategyKind::Random, StrategyKind::Pos, StrategyKind::Pct(1), StrategyKind::Pct(3)] {
            let mut s = kind.build();
            let c = count_bugs(&prog, Config::default(), s.as_mut(), 13, 2000, |r| r.received[0][..4] == [1,1,1,1]);
            println!("C {kind:?}: {c}/2000");
        }
    }
}
