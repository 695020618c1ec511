//! The selector's operators, precedence and errors; proptests: no input panics, and
//! printed trees parse back to themselves and match as a plain evaluator says.

use super::*;
use proptest::prelude::*;

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn sel(s: &str) -> Selector {
    Selector::parse(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
}

#[test]
fn all_and_empty_match_everything_and_not_all_nothing() {
    let none = labels(&[]);
    let some = labels(&[("a", "1")]);
    for s in ["all()", "", "  ", "all( )"] {
        assert_eq!(sel(s), Selector::all(), "{s:?}");
        assert!(sel(s).matches(&none) && sel(s).matches(&some));
    }
    assert!(!sel("!all()").matches(&none));
    assert!(!sel("!all()").matches(&some));
    assert_eq!(Selector::all().to_string(), "all()");
    assert_eq!("all()".parse::<Selector>().unwrap(), Selector::default());
}

#[test]
fn each_operator() {
    let l = labels(&[
        ("kubernetes.io/hostname", "node-a"),
        ("zone", "eu-west-1a"),
        ("projectcalico.org/name", "node-a"),
    ]);
    let yes = [
        "zone == 'eu-west-1a'",
        "zone == \"eu-west-1a\"",
        "zone != 'us'",
        "missing != 'x'",
        "has(zone)",
        "has(kubernetes.io/hostname)",
        "!has(missing)",
        "zone in {'eu-west-1a', 'us'}",
        "zone not in {'us','ap'}",
        "missing not in {'x'}",
        "zone contains 'west'",
        "zone starts with 'eu-'",
        "zone ends with '1a'",
        "kubernetes.io/hostname == 'node-a'",
        "projectcalico.org/name == 'node-a'",
        "has(zone) && zone != 'x'",
        "zone == 'x' || has(zone)",
        "!(zone == 'x')",
        "zone not in {}",
    ];
    for s in yes {
        assert!(sel(s).matches(&l), "{s} should match");
    }
    let no = [
        "zone == 'us'",
        "missing == 'x'",
        "zone != 'eu-west-1a'",
        "has(missing)",
        "!has(zone)",
        "zone in {'us'}",
        "missing in {'x'}",
        "zone in {}",
        "zone not in {'eu-west-1a'}",
        "zone contains 'east'",
        "missing contains ''",
        "zone starts with 'us'",
        "missing starts with ''",
        "zone ends with '1b'",
        "missing ends with ''",
        "has(zone) && zone == 'x'",
    ];
    for s in no {
        assert!(!sel(s).matches(&l), "{s} should not match");
    }
}

#[test]
fn precedence_not_and_or() {
    let l = labels(&[("a", "1")]);
    // && binds tighter than ||: a || (b && c).
    assert!(sel("has(a) || has(b) && has(c)").matches(&l));
    assert!(!sel("(has(a) || has(b)) && has(c)").matches(&l));
    // ! binds tighter than &&: (!b) && a.
    assert!(sel("!has(b) && has(a)").matches(&l));
    assert!(!sel("!has(a) && has(a)").matches(&l));
    assert!(sel("!(has(a) && has(b))").matches(&l));
    assert!(sel("!!has(a)").matches(&l));
    assert_eq!(
        sel("has(a) || has(b) && has(c)"),
        sel("has(a) || (has(b) && has(c))")
    );
}

#[test]
fn display_is_canonical_and_parses_back() {
    for (text, canonical) in [
        ("a=='x'", "a == 'x'"),
        ("a in {\"x\",'y'}", "a in {'x', 'y'}"),
        ("a == \"it's\"", "a == \"it's\""),
        ("!( has(a)||has(b) )", "!(has(a) || has(b))"),
        (
            "(has(a) && has(b)) && has(c)",
            "(has(a) && has(b)) && has(c)",
        ),
        (
            "has(a) && (has(b) || has(c))",
            "has(a) && (has(b) || has(c))",
        ),
        (
            "a not in {} || a starts with 'p'",
            "a not in {} || a starts with 'p'",
        ),
        (
            "a ends with 's' && a contains 'c'",
            "a ends with 's' && a contains 'c'",
        ),
    ] {
        let s = sel(text);
        assert_eq!(s.to_string(), canonical, "{text}");
        assert_eq!(sel(canonical), s);
    }
}

#[test]
fn errors_say_where_and_what_was_expected() {
    let cases = [
        (
            "a ==",
            "position 4: expected a quoted string, found the end",
        ),
        ("a = 'x'", "position 2: expected =="),
        ("a == 'x", "position 5: expected a closing '"),
        ("has(a", "position 5: expected ) closing has("),
        ("has()", "position 4: expected a label inside has()"),
        ("(has(a)", "position 7: expected ) or an operator"),
        (
            "a is 'x'",
            "position 2: expected an operator after the label",
        ),
        ("a in 'x'", "position 5: expected { opening a set"),
        ("a in {'x' 'y'}", "position 10: expected , or }"),
        ("a not 'x'", "position 6: expected in"),
        ("a starts 'x'", "position 9: expected with"),
        ("has(a) has(b)", "position 7: expected &&, || or the end"),
        (
            "has(a) &&",
            "position 9: expected a label, all(), has(), ! or (",
        ),
        ("a == 'x' & b", "position 9: expected &&"),
        ("a == 'x' | b", "position 9: expected ||"),
        (
            "a == 'x' #",
            "position 9: expected a label, a string or an operator",
        ),
        ("all(", "position 4: expected ) closing all("),
        ("== 'x'", "position 0: expected a label"),
    ];
    for (text, want) in cases {
        let e = Selector::parse(text).expect_err(text);
        assert!(e.0.contains(want), "{text:?}: {e} does not say {want:?}");
        assert!(e.to_string().starts_with("selector: "));
    }
    let deep = format!("{}has(a){}", "(".repeat(1000), ")".repeat(1000));
    assert!(Selector::parse(&deep).unwrap_err().0.contains("nested"));
    let bangs = format!("{}has(a)", "!".repeat(1000));
    assert!(Selector::parse(&bangs).is_err());
}

/// A plain reference evaluator, written apart from `Expr::eval`.
fn reference(e: &Expr, l: &BTreeMap<String, String>) -> bool {
    let label = |k: &String| l.get(k);
    match e {
        Expr::All => true,
        Expr::Has(k) => label(k).is_some(),
        Expr::Eq(k, v) => label(k) == Some(v),
        Expr::Ne(k, v) => label(k) != Some(v),
        Expr::In(k, s) => label(k).is_some_and(|x| s.contains(x)),
        Expr::NotIn(k, s) => label(k).is_none_or(|x| !s.contains(x)),
        Expr::Contains(k, v) => label(k).is_some_and(|x| x.contains(v)),
        Expr::StartsWith(k, v) => label(k).is_some_and(|x| x.starts_with(v)),
        Expr::EndsWith(k, v) => label(k).is_some_and(|x| x.ends_with(v)),
        Expr::Not(e) => !reference(e, l),
        Expr::And(v) => v.iter().all(|e| reference(e, l)),
        Expr::Or(v) => v.iter().any(|e| reference(e, l)),
    }
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("a".to_string()),
        Just("b".to_string()),
        Just("kubernetes.io/hostname".to_string()),
        Just("in".to_string()),
        Just("has".to_string()),
        "[a-z][a-z0-9_./-]{0,6}",
    ]
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("x".to_string()),
        Just("y".to_string()),
        Just(String::new()),
        "[a-z ']{0,4}",
        "[a-z \"-]{0,4}",
    ]
}

fn tree() -> impl Strategy<Value = Expr> {
    let leaf = prop_oneof![
        Just(Expr::All),
        key().prop_map(Expr::Has),
        (key(), value()).prop_map(|(k, v)| Expr::Eq(k, v)),
        (key(), value()).prop_map(|(k, v)| Expr::Ne(k, v)),
        (key(), prop::collection::vec(value(), 0..3)).prop_map(|(k, s)| Expr::In(k, s)),
        (key(), prop::collection::vec(value(), 0..3)).prop_map(|(k, s)| Expr::NotIn(k, s)),
        (key(), value()).prop_map(|(k, v)| Expr::Contains(k, v)),
        (key(), value()).prop_map(|(k, v)| Expr::StartsWith(k, v)),
        (key(), value()).prop_map(|(k, v)| Expr::EndsWith(k, v)),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            inner.clone().prop_map(|e| Expr::Not(Box::new(e))),
            prop::collection::vec(inner.clone(), 2..4).prop_map(Expr::And),
            prop::collection::vec(inner, 2..4).prop_map(Expr::Or),
        ]
    })
}

fn label_map() -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::btree_map(key(), value(), 0..4)
}

proptest! {
    #[test]
    fn any_input_is_parsed_or_refused_never_a_panic(s in "\\PC{0,40}") {
        let _ = Selector::parse(&s);
    }

    #[test]
    fn selector_like_input_never_panics(s in "[a-z!&|(){},'\" =]{0,40}") {
        if let Ok(sel) = Selector::parse(&s) {
            // Whatever parses prints to a text that parses back to it.
            prop_assert_eq!(Selector::parse(&sel.to_string()).unwrap(), sel);
        }
    }

    #[test]
    fn printed_trees_parse_back_and_match_as_the_reference(
        t in tree(),
        maps in prop::collection::vec(label_map(), 1..6),
    ) {
        let s = Selector { expr: t.clone() };
        let text = s.to_string();
        let back = Selector::parse(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        prop_assert_eq!(&back, &s, "{}", text);
        for l in &maps {
            prop_assert_eq!(back.matches(l), reference(&t, l), "{} on {:?}", text, l);
        }
    }
}
