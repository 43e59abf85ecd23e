//! `docs/best-practices.md` maps every practice to where it lives. This keeps the map
//! honest: every linked file exists, every line range is inside it and still holds the
//! quoted text, and every named template resource exists. Moving code fails this test
//! until the map is updated with it (`make best-practices` moves the ranges).

use std::path::Path;

use emulator::template::Template;

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// `[path Lx-Ly](../path#Lx-Ly) `text``: (path, x, y, text).
fn code_links(line: &str) -> Option<(String, usize, usize, String)> {
    let link = line.split("](../").nth(1)?;
    let (path, rest) = link.split_once("#L")?;
    let (range, rest) = rest.split_once(')')?;
    let (from, to) = range.split_once("-L")?;
    let text = rest.split('`').nth(1)?;
    Some((
        path.to_owned(),
        from.parse().ok()?,
        to.parse().ok()?,
        text.to_owned(),
    ))
}

#[test]
fn every_practice_points_at_something_that_exists() {
    let map = std::fs::read_to_string(root().join("docs/best-practices.md")).unwrap();
    let template = Template::load(&Template::workspace_template()).unwrap();
    let mut practices = 0;
    let mut links = 0;
    for line in map.lines() {
        if line
            .split_once(". **")
            .is_some_and(|(n, _)| n.parse::<usize>().is_ok())
        {
            practices += 1;
            let number: usize = line.split_once('.').unwrap().0.parse().unwrap();
            assert_eq!(number, practices, "practices are numbered in order: {line}");
        }
        if let Some((path, from, to, text)) = code_links(line) {
            let file = std::fs::read_to_string(root().join(&path))
                .unwrap_or_else(|e| panic!("{path} is linked but unreadable: {e}"));
            let lines: Vec<&str> = file.lines().collect();
            assert!(
                1 <= from && from <= to && to <= lines.len(),
                "{path}: L{from}-L{to} is outside its {} lines",
                lines.len()
            );
            assert!(
                lines[from - 1..to].iter().any(|l| l.contains(&text)),
                "{path} L{from}-L{to} no longer holds `{text}`: run `make best-practices`"
            );
            links += 1;
        }
        for piece in line.split("`template.yaml` resource `").skip(1) {
            let name = piece.split('`').next().unwrap();
            assert!(
                template.resources.contains_key(name),
                "template.yaml has no resource {name}"
            );
            links += 1;
        }
    }
    assert!(links >= practices, "every practice links somewhere");
    // The list the map follows, where it is available (beside the project in this
    // workspace's checkouts): the map covers all of it.
    let list = root().join("../shared/best-practices.md");
    if let Ok(list) = std::fs::read_to_string(list) {
        let listed = list
            .lines()
            .filter(|l| {
                l.split_once(". ")
                    .is_some_and(|(n, _)| n.parse::<usize>().is_ok())
            })
            .count();
        assert_eq!(practices, listed, "one entry per practice in the list");
    } else {
        assert_eq!(practices, 37, "the map covers the 37 practices of the list");
    }
}
