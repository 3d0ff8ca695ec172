//! `report.html` opened in a real browser (Debian's chromium, headless;
//! `make test` installs it when missing): it loads with no script error and
//! no request outside the file, and its summary table and every plot are
//! there. Screenshots are kept under `<target>/test-artifacts/`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

fn tessera(args: &[&str], cwd: &Path) -> std::process::Output {
    tessera_command(args, cwd)
}

fn chromium() -> &'static str {
    let found = Command::new("chromium").arg("--version").output().is_ok_and(|o| o.status.success());
    assert!(
        found,
        "chromium is not installed: `make test` installs it (testing/chromium.sh; Debian: apt-get install chromium)"
    );
    "chromium"
}

/// The page's DOM after its script ran, and chromium's log.
fn open_in_browser(page: &Path, screenshot: &str) -> (String, String) {
    let url = format!("file://{}", page.canonicalize().unwrap().display());
    let profile = tempfile::tempdir().unwrap();
    let flags = ["--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0"];
    let user_dir = format!("--user-data-dir={}", profile.path().display());
    let size = "--window-size=1280,2400";
    let dom = Command::new(chromium()).args(flags).args([&user_dir, size, "--dump-dom", &url]).output().unwrap();
    assert!(dom.status.success(), "chromium: {}", String::from_utf8_lossy(&dom.stderr));
    let artifacts = profile_dir().join("test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let shot = artifacts.join(screenshot);
    let status = Command::new(chromium())
        .args(flags)
        .args([&user_dir, size, &format!("--screenshot={}", shot.display()), &url])
        .output()
        .unwrap();
    assert!(status.status.success() && shot.exists(), "no screenshot: {}", String::from_utf8_lossy(&status.stderr));
    (String::from_utf8_lossy(&dom.stdout).into_owned(), String::from_utf8_lossy(&dom.stderr).into_owned())
}

/// The checks every page passes; the number of plots it shows.
fn check_page(run: &Path, screenshot: &str) -> String {
    let page = run.join("report.html");
    let html = std::fs::read_to_string(&page).expect("run folders have report.html");
    for outside in ["src=\"http", "href=\"http", "<link", "<script src", "@import"] {
        assert!(!html.contains(outside), "the page reaches outside the file: {outside}");
    }
    let (dom, log) = open_in_browser(&page, screenshot);
    assert!(dom.contains("data-ready=\"1\""), "its script did not run to the end");
    assert!(dom.contains("data-errors=\"0\""), "script errors: {log}");
    assert!(!log.contains("Uncaught") && !log.contains("net::ERR"), "{log}");
    assert!(dom.contains("id=\"summary-table\""), "no summary table");
    let plots = std::fs::read_dir(run.join("plots")).map_or(0, |d| d.count());
    assert_eq!(dom.matches("<figure class=\"plot\">").count(), plots, "every plot of plots/ on the page");
    assert!(dom.matches("<svg").count() >= plots, "an SVG per plot");
    if plots > 0 {
        let least = attribute(&dom, "data-least-plot-font-px").parse::<f64>().unwrap();
        assert!(least >= 11.0, "the plots' smallest text is {least} px on the page");
    }
    assert!(dom.contains("id=\"system-table\"") && dom.contains("<th>CPU</th>"), "the machine and build");
    dom
}

/// The value of `name="..."` in `dom`.
fn attribute<'a>(dom: &'a str, name: &str) -> &'a str {
    let start = dom.find(&format!("{name}=\"")).unwrap_or_else(|| panic!("no {name} on the page")) + name.len() + 2;
    &dom[start..start + dom[start..].find('"').unwrap()]
}

#[test]
fn a_training_run_s_page_shows_its_summary_and_every_plot_in_a_browser() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = examples().join("quickstart.toml").display().to_string();
    let out = tessera(
        &["run", &manifest, "--set", "train.epochs=2", "--set", "data.examples=600", "--out", "run", "-q"],
        dir.path(),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let dom = check_page(&dir.path().join("run"), "report-quickstart.png");
    assert!(dom.contains("final_test_accuracy"), "the engine's figures in the summary");
    // Three seeds: the headline first with its spread, the settings that
    // differ, the seeds as a band, and where the figures come from.
    let headline = dom.split("id=\"headline\"").nth(1).expect("a headline section").split("</table>").next().unwrap();
    assert!(
        headline.contains("Final test accuracy") && headline.contains(" ± ") && headline.contains("<td>3</td>"),
        "{headline}"
    );
    assert!(dom.find("id=\"headline\"") < dom.find("id=\"summary\""), "the headline comes first");
    let settings =
        dom.split("id=\"settings-table\"").nth(1).expect("a settings table").split("</table>").next().unwrap();
    assert!(settings.contains("sampler.use") && settings.contains("baselines.full-shuffle"), "{settings}");
    let plot = dom.split("engine · test_accuracy</figcaption>").nth(1).expect("the test accuracy plot");
    let plot = plot.split("</svg>").next().unwrap();
    assert!(plot.contains("<polygon") && plot.contains("(±sd, n=3)"), "the seeds' band and its legend");
    let system = dom.split("id=\"system-table\"").nth(1).unwrap().split("</table>").next().unwrap();
    let commit = tessera(&["--version"], dir.path());
    let commit =
        String::from_utf8_lossy(&commit.stdout).split("commit ").nth(1).unwrap().split(',').next().unwrap().to_string();
    assert!(
        system.contains("cores") && system.contains(&format!("(commit {commit})")) && system.contains("libtorch"),
        "{system}"
    );
    assert!(dom.contains("manifest.toml"), "the manifest is shown");
    // `tessera report` writes it again from results.json.
    std::fs::remove_file(dir.path().join("run/report.html")).unwrap();
    let again = tessera(&["report", "run"], dir.path());
    assert!(again.status.success() && dir.path().join("run/report.html").exists());
}

#[test]
fn a_failed_variant_s_error_and_a_population_run_render_too() {
    let dir = tempfile::tempdir().unwrap();
    let body = "kind = \"graph\"\n\n[graph]\nnodes = 300\nedges = 1500\nprobability_model = \"weighted-cascade\"\nbudget = 5\nbudgets = [2, 5]\nsimulations = 50\n\n[[variant]]\nname = \"degree\"\nobjective = { use = \"baselines.degree\" }\n\n[[variant]]\nname = \"lugreedy\"\nobjective = { use = \"robust-im.lugreedy\" }\n";
    let m = write_manifest(dir.path(), &[&baselines(), &library("tessera_robust_im")], body);
    let _ = tessera(&["run", &m.display().to_string(), "--out", "graph", "-q"], dir.path());
    let dom = check_page(&dir.path().join("graph"), "report-failed-variant.png");
    assert!(
        dom.contains("<tr class=\"failed\">") && dom.contains("needs a hyperparametric graph"),
        "the error is shown"
    );

    let manifest = examples().join("pointwise-profiles.toml").display().to_string();
    let sets = ["population.seeds=[1,2]", "population.epochs=[1,2]", "population.widths=[0.25]"];
    let mut args = vec!["run", &manifest, "--variant", "digits", "--out", "population", "-q"];
    sets.iter().for_each(|s| args.extend(["--set", s]));
    let out = tessera(&args, dir.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    check_page(&dir.path().join("population"), "report-population.png");
}

#[test]
fn two_runs_compare_side_by_side_with_differences_and_shared_curves() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = examples().join("quickstart.toml").display().to_string();
    for (out, epochs) in [("one", "train.epochs=1"), ("two", "train.epochs=2")] {
        let args = ["run", &manifest, "--set", epochs, "--set", "data.examples=600", "--out", out, "-q"];
        assert!(tessera(&args, dir.path()).status.success());
    }
    let out = tessera(&["compare", "one", "two", "--out", "cmp"], dir.path());
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        table.contains("two − one")
            && table.contains("final_test_accuracy")
            && table.contains("train.epochs: one = 1, two = 2"),
        "{table}"
    );
    assert!(table.lines().any(|l| l.starts_with("full-shuffle")), "{table}");
    let page = dir.path().join("cmp/compare.html");
    let (dom, log) = open_in_browser(&page, "compare-quickstart.png");
    assert!(dom.contains("data-ready=\"1\"") && dom.contains("data-errors=\"0\""), "{log}");
    let plots = std::fs::read_dir(dir.path().join("cmp/plots")).unwrap().count();
    assert!(plots > 0 && dom.matches("<figure class=\"plot\">").count() == plots, "every shared curve drawn");
    let differences =
        dom.split("id=\"differences-table\"").nth(1).expect("what differs").split("</table>").next().unwrap();
    assert!(differences.contains("train.epochs") && differences.contains("<td>1</td><td>2</td>"), "{differences}");
    assert!(attribute(&dom, "data-least-plot-font-px").parse::<f64>().unwrap() >= 11.0);
    // Never into a folder that holds something.
    let again = tessera(&["compare", "one", "two", "--out", "cmp"], dir.path());
    assert!(!again.status.success() && String::from_utf8_lossy(&again.stderr).contains("not empty"));
}

#[test]
fn a_worker_s_finished_unit_shows_on_the_page_of_a_run_still_going() {
    // The run is planned and stopped before any unit (as a Slurm array waits
    // in the queue); then one task's worker runs unit 0.
    let dir = tempfile::tempdir().unwrap();
    let body = "kind = \"graph\"\n\n[graph]\nnodes = 300\nedges = 1500\nprobability_model = \"weighted-cascade\"\nbudget = 3\nsimulations = 20\n\n[[variant]]\nname = \"degree\"\nobjective = { use = \"baselines.degree\" }\n\n[[variant]]\nname = \"random\"\nobjective = { use = \"baselines.random\" }\n";
    let session = prepare(&write_manifest(dir.path(), &[&baselines()], body)).unwrap();
    let cancel = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let options = tessera_engine::run::RunOptions { out: Some(dir.path().join("run")), cancel, ..Default::default() };
    tessera_engine::run::run(&session, &options).unwrap();
    let out = tessera(&["worker", "run", "--unit", "0"], dir.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let dom = check_page(&dir.path().join("run"), "report-still-running.png");
    let running = dom.split("id=\"running\"").nth(1).expect("says the run is still going");
    let running = running.split("</p>").next().unwrap();
    assert!(running.contains("(1 to come): random"), "{running}");
    assert!(dom.contains("expected_spread"), "unit 0's figures are in the summary");
}
