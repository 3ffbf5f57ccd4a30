//! The web console in a real browser: headless Chromium, driven through chromedriver
//! (WebDriver), against a real `runpermit serve` on SQLite and, with
//! `RUNPERMIT_TEST_DATABASE_URL`, on PostgreSQL.
//!
//! - The public registry lists a permit issued through the API, and the proof its log entry
//!   links to verifies the permit against the log's key.
//! - Two reviewers sign in, find an application in their queue, read its plan and estimate and
//!   approve it (the first with a condition); the permit appears on the registry.
//! - A provider's signed usage reports hold the run at its tranche's end; the lab submits its
//!   milestone report through its run page; an evaluator accepts it; the run's chart shows the
//!   next tranche released. The provider reads the runs it meters and its reports.
//! - A reviewer revokes a run; the registry shows its permit not in good standing.
//! - Refusals: another lab's application is not found; a form without its anti-forgery token is
//!   refused, and so is one posted from another origin even with the right token; a session
//!   that was signed out cannot act, even with its old cookie.
//! - Every page visited has one `h1`, a label for every control, scoped table headers, a
//!   language and a title; the public pages are photographed at 320 px too.
//!
//! Every page visited is saved as a PNG under `$CARGO_TARGET_DIR/console-screenshots/` (else
//! `target/console-screenshots/`), named `<database>-<scenario>-<nn>-<page>.png`, so that people
//! can look at what the browser saw.
//!
//! Chromium and chromedriver come from Debian (`chromium`, `chromium-driver`);
//! `RUNPERMIT_CHROMEDRIVER` and `RUNPERMIT_CHROMIUM` name other binaries. Without chromedriver
//! the suite says so and passes, unless `RUNPERMIT_TEST_BROWSER=1` (set by CI), when it fails.

mod common;

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{Authority, examples, http_get, id_of, json, ok, path_str, run, start_in};
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

/// One browser at a time: each scenario starts its own authority, chromedriver and Chromium,
/// and the machines CI runs on are small.
static ONE_BROWSER: Mutex<()> = Mutex::new(());

/// The browser window: wide enough for the desk's tables.
const WIDTH: u32 = 1280;
const HEIGHT: u32 = 900;

/// Where the screenshots go.
fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"),
        PathBuf::from,
    );
    target.join("console-screenshots")
}

/// chromedriver, started on a free port in a process group of its own; stopped when dropped,
/// with the Chromium it started: a scenario that fails midway leaves no browser behind.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The whole group: killing chromedriver alone would leave its Chromium running.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    /// Starts chromedriver, or says why the browser suite is skipped (`None`). With
    /// `RUNPERMIT_TEST_BROWSER=1` a missing chromedriver fails the test instead.
    fn start() -> Option<Driver> {
        let binary = std::env::var("RUNPERMIT_CHROMEDRIVER")
            .unwrap_or_else(|_| "/usr/bin/chromedriver".to_owned());
        if !Path::new(&binary).exists() {
            assert!(
                std::env::var("RUNPERMIT_TEST_BROWSER").as_deref() != Ok("1"),
                "RUNPERMIT_TEST_BROWSER=1 but there is no chromedriver at {binary} \
                 (apt-get install chromium chromium-driver, or set RUNPERMIT_CHROMEDRIVER)"
            );
            println!(
                "browser suite skipped: no chromedriver at {binary} (apt-get install chromium \
                 chromium-driver; RUNPERMIT_TEST_BROWSER=1 makes this a failure)"
            );
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("a free port")
            .local_addr()
            .expect("address")
            .port();
        let child = Command::new(&binary)
            .process_group(0)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {binary}: {e}"));
        let driver = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "chromedriver did not listen on port {port} within 20 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(driver)
    }
}

/// A headless Chromium on one authority's console, saving a screenshot of every page.
struct Browser {
    client: Client,
    server: String,
    prefix: String,
    shots: u32,
    width: u32,
    _driver: Driver,
}

/// The texts of `elements`, for failure messages.
async fn texts(elements: &[Element]) -> Vec<String> {
    let mut all = Vec::new();
    for e in elements {
        all.push(e.text().await.unwrap_or_default());
    }
    all
}

impl Browser {
    /// Starts a headless Chromium for `server` through `driver`. `prefix` begins every
    /// screenshot's name.
    async fn start(driver: Driver, server: &str, prefix: &str) -> Browser {
        // Both of rustls's providers are built in (fantoccini's TLS stack asks for one, the
        // workspace for the other): name one, as the gate agent does.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let chromium =
            std::env::var("RUNPERMIT_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    format!("--window-size={WIDTH},{HEIGHT}"),
                ],
            },
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!("an object")
        };
        let mut builder = ClientBuilder::rustls().expect("TLS roots for the WebDriver client");
        builder.capabilities(capabilities);
        let client = tokio::time::timeout(Duration::from_secs(60), builder.connect(&driver.url))
            .await
            .expect("Chromium did not start within 60 s")
            .unwrap_or_else(|e| panic!("a Chromium session through chromedriver: {e}"));
        // This scenario's pictures from an earlier run go: what is left is what this run saw.
        std::fs::create_dir_all(screenshot_dir()).expect("the screenshot directory");
        for old in std::fs::read_dir(screenshot_dir()).expect("the screenshot directory") {
            let old = old.expect("a directory entry").path();
            let name = old.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.starts_with(&format!("{prefix}-")) && name.ends_with(".png") {
                let _ = std::fs::remove_file(&old);
            }
        }
        Browser {
            client,
            server: server.to_owned(),
            prefix: prefix.to_owned(),
            shots: 0,
            width: WIDTH,
            _driver: driver,
        }
    }

    async fn close(self) {
        let _ = self.client.close().await;
    }

    /// The current page's path and query.
    async fn path(&self) -> String {
        let url = self.client.current_url().await.expect("the current URL");
        match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        }
    }

    /// The HTTP status of the current page's response (the Navigation Timing entry).
    async fn status(&self) -> u64 {
        self.client
            .execute(
                "return performance.getEntriesByType('navigation')[0].responseStatus;",
                vec![],
            )
            .await
            .expect("the navigation's status")
            .as_u64()
            .expect("a status")
    }

    /// Saves the whole page as `<prefix>-<nn>-<name>.png`: the window is made as tall as the
    /// page (up to 6000 px with its frame) for the picture, then put back.
    async fn shot(&mut self, name: &str) {
        self.wait_loaded().await;
        self.check_accessible(name).await;
        // The window's frame takes some of its height: the page's height plus the frame's.
        let height = self
            .client
            .execute(
                "return Math.max(document.documentElement.scrollHeight, document.body ? document.body.scrollHeight : 0) + (window.outerHeight - window.innerHeight);",
                vec![],
            )
            .await
            .ok()
            .and_then(|v| v.as_u64())
            .unwrap_or(u64::from(HEIGHT))
            .clamp(u64::from(HEIGHT), 6000);
        let height = u32::try_from(height).expect("at most 6000");
        let _ = self.client.set_window_size(self.width, height).await;
        let png = self.client.screenshot().await.expect("a screenshot");
        let _ = self.client.set_window_size(self.width, HEIGHT).await;
        self.shots += 1;
        let file = screenshot_dir().join(format!("{}-{:02}-{name}.png", self.prefix, self.shots));
        std::fs::write(&file, png).expect("writing the screenshot");
    }

    /// What every page promises people using assistive technology: one `h1`, a label for
    /// every control, a header cell with a scope in every table, a language, a title.
    async fn check_accessible(&self, name: &str) {
        let problems = self
            .client
            .execute(
                r#"
                const problems = [];
                const h1s = document.querySelectorAll('h1').length;
                if (h1s !== 1) problems.push(h1s + ' h1 elements');
                if (!document.documentElement.lang) problems.push('no lang on html');
                if (!document.title.trim()) problems.push('no title');
                for (const c of document.querySelectorAll('input:not([type=hidden]), select, textarea')) {
                    if (c.labels.length === 0 && !c.getAttribute('aria-label'))
                        problems.push('unlabelled ' + c.tagName.toLowerCase() + ' ' + (c.id || c.name));
                }
                for (const t of document.querySelectorAll('table')) {
                    if (t.querySelectorAll('th').length === 0) problems.push('table ' + (t.id || '') + ' without th');
                    for (const th of t.querySelectorAll('th')) {
                        if (!th.getAttribute('scope')) { problems.push('th without scope in table ' + (t.id || '')); break; }
                    }
                }
                return problems;
                "#,
                vec![],
            )
            .await
            .expect("checking the page");
        let problems: Vec<String> = problems
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p.as_str().map(str::to_owned))
            .collect();
        assert!(
            problems.is_empty(),
            "page {name} ({}): {problems:?}",
            self.path().await
        );
    }

    /// Waits until the page has loaded.
    async fn wait_loaded(&self) {
        let started = Instant::now();
        loop {
            let ready = self
                .client
                .execute("return document.readyState;", vec![])
                .await
                .ok();
            if ready.as_ref().and_then(Value::as_str) == Some("complete") {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "the page did not load within 20 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Opens `path` on the authority and saves its screenshot as `name`.
    async fn open(&mut self, path: &str, name: &str) {
        self.client
            .goto(&format!("{}{path}", self.server))
            .await
            .unwrap_or_else(|e| panic!("opening {path}: {e}"));
        self.shot(name).await;
    }

    /// Reloads the current page (past any cached copy) and saves its screenshot as `name`.
    async fn reload(&mut self, name: &str) {
        self.client.refresh().await.expect("reloading");
        self.shot(name).await;
    }

    /// The element `css` on the current page; a failure names the page and what it says.
    async fn find(&self, css: &str) -> Element {
        match self.client.find(Locator::Css(css)).await {
            Ok(e) => e,
            Err(e) => panic!(
                "no {css} on {} ({e}); the page says:\n{}",
                self.path().await,
                self.text().await
            ),
        }
    }

    async fn find_all(&self, css: &str) -> Vec<Element> {
        self.client
            .find_all(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("looking for {css}: {e}"))
    }

    /// The page's visible text.
    async fn text(&self) -> String {
        match self.client.find(Locator::Css("body")).await {
            Ok(body) => body.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// The page's heading.
    async fn h1(&self) -> String {
        self.find("h1").await.text().await.expect("the heading")
    }

    /// The row of `table` that mentions `needle`; a failure lists the rows.
    async fn row(&self, table: &str, needle: &str) -> Element {
        let rows = self.find_all(&format!("{table} tr")).await;
        for row in &rows {
            if row.text().await.unwrap_or_default().contains(needle) {
                return row.clone();
            }
        }
        panic!(
            "no row of {table} on {} mentions {needle}; its rows:\n{:#?}",
            self.path().await,
            texts(&rows).await
        );
    }

    /// Clicks `element` (a link or a submit button), waits for the next page and saves its
    /// screenshot as `name`.
    async fn click(&mut self, element: &Element, name: &str) {
        element.click().await.expect("clicking");
        // The next page has replaced this one once the clicked element is gone with it.
        let started = Instant::now();
        while element.tag_name().await.is_ok() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "clicking for {name} led nowhere within 20 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.shot(name).await;
    }

    /// Submits form `form` through its submit button and saves the next page as `name`.
    async fn submit(&mut self, form: &str, name: &str) {
        let button = self
            .find(&format!(
                "{form} button[type=submit], {form} input[type=submit]"
            ))
            .await;
        self.click(&button, name).await;
    }

    /// Types `text` into the field `css`.
    async fn fill(&self, css: &str, text: &str) {
        let field = self.find(css).await;
        field.clear().await.expect("clearing");
        field.send_keys(text).await.expect("typing");
    }

    /// Chooses `value` in the select `css`.
    async fn choose(&self, css: &str, value: &str) {
        self.find(css)
            .await
            .select_by_value(value)
            .await
            .unwrap_or_else(|e| panic!("choosing {value} in {css}: {e}"));
    }

    /// Signs in with `token` through the sign-in form and checks who the desk says this is.
    async fn sign_in(&mut self, token: &str, who: &str) {
        self.open("/console/sign-in", &format!("sign-in-{who}"))
            .await;
        self.fill("input#token", token).await;
        self.submit("form[action='/console/sign-in']", &format!("desk-{who}"))
            .await;
        assert_eq!(
            self.path().await,
            "/console",
            "signing in leads to the desk"
        );
        let text = self.text().await;
        assert!(text.contains(who), "the desk names {who}:\n{text}");
    }

    /// Signs out through the button in the header.
    async fn sign_out(&mut self, name: &str) {
        self.submit("form[action='/console/sign-out']", name).await;
        assert_eq!(self.path().await, "/", "signing out leads to the registry");
        assert!(
            self.client
                .find(Locator::Css("form[action='/console/sign-out']"))
                .await
                .is_err(),
            "no sign-out button once signed out"
        );
    }

    /// The window's inner width and the page's width, in CSS pixels: a page wider than its
    /// window scrolls sideways.
    async fn widths(&self) -> (u64, u64) {
        let widths = self
            .client
            .execute(
                "return [window.innerWidth, document.documentElement.scrollWidth];",
                vec![],
            )
            .await
            .expect("widths");
        (
            widths[0].as_u64().expect("a width"),
            widths[1].as_u64().expect("a width"),
        )
    }

    /// Resizes the window to `width` (the pages' layout at that width) and back with `WIDTH`.
    async fn set_width(&mut self, width: u32) {
        self.width = width;
        self.client
            .set_window_size(width, HEIGHT)
            .await
            .expect("resizing the window");
    }
}

/// Runs `scenario` with a browser on a fresh authority on SQLite, or on PostgreSQL when
/// `postgres` (skipped without `RUNPERMIT_TEST_DATABASE_URL`, outside CI), after `setup` has
/// prepared the authority (and possibly restarted it).
fn with_browser<S, F>(
    name: &str,
    postgres: bool,
    setup: impl FnOnce(&mut Authority, Option<&str>) -> S,
    scenario: F,
) where
    F: AsyncFnOnce(&Authority, &mut Browser, S),
{
    let _one = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let Some(driver) = Driver::start() else {
        return;
    };
    let schema = if postgres {
        match common::PgSchema::create(&format!("console_browser_{name}_{}", std::process::id())) {
            Some(schema) => Some(schema),
            None => return,
        }
    } else {
        None
    };
    let database_url = schema.as_ref().map(|s| s.url.clone());
    let db = if postgres { "postgres" } else { "sqlite" };
    let dir = std::env::temp_dir().join(format!(
        "runpermit-console-{db}-{name}-{}",
        std::process::id()
    ));
    let mut authority = start_in(dir, database_url.as_deref());
    let prepared = setup(&mut authority, database_url.as_deref());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let mut browser = Browser::start(driver, &authority.server, &format!("{db}-{name}")).await;
        scenario(&authority, &mut browser, prepared).await;
        browser.close().await;
    });
    drop(authority);
    drop(schema);
}

/// Serves `html` to the first request on a port of its own, as another site would; its URL.
fn serve_once(html: &str) -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let url = format!("http://{}/", listener.local_addr().expect("address"));
    let page = html.to_owned();
    std::thread::spawn(move || {
        if let Ok((mut stream, _)) = listener.accept() {
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{page}",
                page.len()
            );
        }
    });
    url
}

/// The people of the scenarios: a lab's applicant, another lab's applicant, two reviewers of
/// the authority, and an evaluator of a safety institute the policy assigns to every run.
struct People {
    lab: String,
    other_lab: String,
    rev1: String,
    rev2: String,
    evaluator: String,
    provider: Provider,
}

/// The compute provider the example plans name (`northwind-cloud`): an operator's token and
/// the key its gate signs usage reports with, registered at the authority.
struct Provider {
    id: String,
    operator: String,
    key: runpermit_permit::SigningKey,
}

/// Posts a usage report of `flop` by `provider` for `run_id` over `(from, to)`, signed with
/// its key, as its gate would; the authority must accept it.
fn report_usage(
    a: &Authority,
    provider: &Provider,
    run_id: &str,
    permit_id: &str,
    seq: u64,
    (from, to): (i64, i64),
    flop: f64,
) {
    use runpermit_compute::Flop;
    use runpermit_permit::{MeterMethod, Metered, UsageReportClaims, sign_usage_report};
    // Scheduler accounting at the B200's 16-bit peak: an upper bound within what the chips
    // can compute at their highest peak.
    let seconds = flop / 2.25e15;
    let metered = Metered {
        method: MeterMethod::SchedulerAccounting,
        accelerator_seconds: [("nvidia-b200".to_owned(), seconds)].into(),
        flop: Flop::new(flop).expect("flop"),
        lower: Flop::new(flop * 0.8).expect("flop"),
        upper: Flop::new(flop).expect("flop"),
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let claims = UsageReportClaims::new(
        &provider.id,
        run_id,
        permit_id,
        "nw-central-3",
        seq,
        (from, to),
        now,
        metered,
    );
    let token = sign_usage_report(&claims, &provider.key).expect("a sound report");
    let answer = common::http_post(
        &a.server,
        "/v1/usage",
        &json!({"reports": [token]}).to_string(),
    );
    let answer: Value = serde_json::from_str(&answer).unwrap_or_else(|_| panic!("{answer}"));
    assert_eq!(
        (answer["stored"].as_u64(), answer["refused"].as_u64()),
        (Some(1), Some(0)),
        "the authority stores the report: {answer}"
    );
}

/// Registers the people, then restarts `serve` with a policy that names the institute as the
/// evaluator of every permitted run.
fn people(a: &mut Authority, database_url: Option<&str>) -> People {
    let admin = a.admin_token.clone();
    let lab = common::lab_applicant(a, "Frontier Lab");
    let other_lab = common::lab_applicant(a, "Other Lab");
    let rev1 = common::member_token(a, "org_authority", "rev1", "reviewer");
    let rev2 = common::member_token(a, "org_authority", "rev2", "reviewer");
    let institute = id_of(&json(
        &["org", "create", "Safety Institute", "--kind", "evaluator"],
        a,
        &admin,
    ));
    let evaluator = common::member_token(a, &institute, "eve", "evaluator");
    let provider_id = id_of(&json(
        &[
            "org",
            "create",
            "Northwind Cloud",
            "--kind",
            "provider",
            "--handle",
            "northwind-cloud",
        ],
        a,
        &admin,
    ));
    let provider_admin = common::member_token(a, &provider_id, "ops-admin", "admin");
    let operator = common::member_token(a, &provider_id, "operator", "provider_operator");
    let key = runpermit_permit::SigningKey::generate();
    let key_file = a.dir.join("reporting-key.pem");
    std::fs::write(&key_file, key.to_pkcs8_pem().as_bytes()).expect("the reporting key");
    common::set_mode(&key_file, 0o600);
    json(
        &[
            "org",
            "add-reporting-key",
            &provider_id,
            "--key",
            path_str(&key_file),
        ],
        a,
        &provider_admin,
    );
    let policy = a.dir.join("policy.toml");
    std::fs::write(
        &policy,
        runpermit_policy::BUILTIN_POLICY_TOML
            .replace(
                "evaluators = []",
                &format!("evaluators = [\"{institute}\"]"),
            )
            .replace("version = \"2026.5\"", "version = \"2026.5-browser\""),
    )
    .expect("writing the policy");
    a.restart_with(database_url, &["--policy", path_str(&policy)]);
    People {
        lab,
        other_lab,
        rev1,
        rev2,
        evaluator,
        provider: Provider {
            id: provider_id,
            operator,
            key,
        },
    }
}

/// Applies for the standard example plan as run `heron-<name>`, valid from today: a permit at
/// once (the notify tier). Returns the permit's id.
fn standard_permit(a: &Authority, lab: &str, name: &str) -> String {
    let plan = common::standard_plan(a, name);
    json(&["apply", path_str(&plan), "--start", "today"], a, lab)["permit_id"]
        .as_str()
        .expect("a permit at once (standard tier)")
        .to_owned()
}

/// The run of permit `permit_id`, as the lab lists it.
fn run_of(a: &Authority, lab: &str, permit_id: &str) -> Value {
    json(&["run", "list"], a, lab)
        .as_array()
        .expect("runs")
        .iter()
        .find(|r| r["permit_id"] == permit_id)
        .unwrap_or_else(|| panic!("no run of permit {permit_id}"))
        .clone()
}

/// Opens the registry (as `name`) once it lists `permit_id`: a permit is public once its log
/// entry is sequenced, within a sequencing interval, and the page may be cached for seconds.
async fn open_registry_listing(b: &mut Browser, permit_id: &str, name: &str) {
    b.open("/", name).await;
    let started = Instant::now();
    loop {
        let mut listed = false;
        for row in b.find_all("table#registry tr").await {
            listed |= row.text().await.unwrap_or_default().contains(permit_id);
        }
        if listed {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the registry does not list permit {permit_id}:\n{}",
            b.text().await
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        b.reload(name).await;
    }
}

/// Whether the registry row of `permit_id` says it is in good standing; the row must say
/// one or the other.
async fn in_good_standing(b: &Browser, permit_id: &str) -> bool {
    let row = b.row("table#registry", permit_id).await;
    let text = row.text().await.expect("row text");
    if text.contains("not in good standing") {
        false
    } else {
        assert!(
            text.contains("in good standing"),
            "the registry row of {permit_id} says whether it is in good standing: {text}"
        );
        true
    }
}

// ---------------------------------------------------------------------------------------
// Signing in and out (the session pages)

#[test]
fn sign_in_and_out_in_a_browser() {
    session(false);
}

#[test]
fn sign_in_and_out_in_a_browser_on_postgresql() {
    session(true);
}

fn session(postgres: bool) {
    let setup = |a: &mut Authority, _: Option<&str>| common::lab_applicant(a, "Frontier Lab");
    with_browser("session", postgres, setup, async |_, b, token| {
        // A desk page without a session sends the person to sign in, and back after.
        b.open("/console", "desk-signed-out").await;
        assert_eq!(b.path().await, "/console/sign-in?next=%2Fconsole");
        // A wrong token is refused with a message, and the form is shown again.
        b.fill("input#token", "rpt_not-a-token").await;
        b.submit("form[action='/console/sign-in']", "sign-in-refused")
            .await;
        assert_eq!(b.status().await, 401);
        assert!(
            b.text().await.contains("unknown, revoked or expired"),
            "{}",
            b.text().await
        );
        b.find("input#token").await;
        // The right token: the desk, as alice.
        b.fill("input#token", &token).await;
        b.submit("form[action='/console/sign-in']", "desk-alice")
            .await;
        assert_eq!(b.path().await, "/console");
        assert!(b.text().await.contains("alice"), "{}", b.text().await);
        // The session cookie cannot be read by scripts.
        let cookie = b
            .client
            .get_named_cookie("runpermit_session")
            .await
            .expect("the session cookie");
        assert_eq!(cookie.http_only(), Some(true));
        assert_eq!(format!("{:?}", cookie.same_site()), "Some(Strict)");
        let visible = b
            .client
            .execute("return document.cookie;", vec![])
            .await
            .expect("document.cookie");
        assert!(
            !visible.as_str().unwrap_or("").contains("runpermit_session"),
            "{visible}"
        );
        // A form on another site (another port of this host: the same site for the cookie,
        // which the browser sends) is refused even with this session's token.
        let csrf = b
            .find("form[action='/console/sign-out'] input[name=csrf]")
            .await
            .prop("value")
            .await
            .expect("the token")
            .expect("a value");
        let other_site = serve_once(&format!(
            "<!DOCTYPE html><html lang=\"en\"><head><title>Another site</title></head><body>\
             <h1>Another site</h1><form method=\"post\" action=\"{server}/console/sign-out\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
             <button type=\"submit\">Go</button></form></body></html>",
            server = b.server
        ));
        b.client.goto(&other_site).await.expect("the other site");
        b.shot("other-site-form").await;
        b.submit("form", "sign-out-from-other-site").await;
        assert_eq!(b.status().await, 403, "{}", b.text().await);
        assert!(
            b.text().await.contains("from another site"),
            "{}",
            b.text().await
        );
        b.open("/console", "desk-after-other-site").await;
        assert_eq!(b.path().await, "/console", "still signed in");
        // Signing out without the form's anti-forgery token is refused; the session stays.
        b.client
            .execute(
                "document.querySelector(\"form[action='/console/sign-out'] input[name=csrf]\").remove();",
                vec![],
            )
            .await
            .expect("removing the anti-forgery field");
        b.submit("form[action='/console/sign-out']", "sign-out-without-csrf")
            .await;
        assert_eq!(b.status().await, 403);
        assert!(b.h1().await.contains("Refused"), "{}", b.text().await);
        b.open("/console", "desk-still-signed-in").await;
        assert_eq!(b.path().await, "/console");
        // Signing out ends the session: the desk asks to sign in again.
        b.sign_out("registry-signed-out").await;
        b.open("/console", "desk-after-sign-out").await;
        assert!(b.path().await.starts_with("/console/sign-in"));
    });
}

// ---------------------------------------------------------------------------------------
// The public pages

fn public_pages(postgres: bool) {
    let setup = |a: &mut Authority, _: Option<&str>| {
        let lab = common::lab_applicant(a, "Frontier Lab");
        let permit_id = standard_permit(a, &lab, "public");
        let permit = a.dir.join("public.jwt");
        ok(
            &["permit", "get", &permit_id, "-o", path_str(&permit)],
            a,
            &lab,
        );
        common::set_mode(&permit, 0o644);
        (permit_id, permit)
    };
    with_browser(
        "public",
        postgres,
        setup,
        async |a, b, (permit_id, permit)| {
            // The registry lists it, in good standing; its first cell links to its page.
            open_registry_listing(b, &permit_id, "registry").await;
            b.find("svg#registry-chart").await;
            assert!(in_good_standing(b, &permit_id).await);
            let row = b.row("table#registry", &permit_id).await;
            let link = row
                .find(Locator::Css("td:first-child a, th:first-child a"))
                .await
                .expect("a link in the row's first cell");
            assert_eq!(
                link.attr("href").await.expect("href").as_deref(),
                Some(format!("/permits/{permit_id}").as_str())
            );
            b.click(&link, "permit").await;
            assert_eq!(b.path().await, format!("/permits/{permit_id}"));
            // The holder and the budget are public; the run's descriptive name is in the
            // confidential plan and stays there.
            let page = b.text().await;
            assert!(
                page.contains(&permit_id) && page.contains("Frontier Lab") && page.contains("FLOP"),
                "{page}"
            );
            assert!(!page.contains("heron-public"), "{page}");

            // Its log entry, and the proof the entry links to verifies the permit.
            let entry = b.find("a#log-entry").await;
            b.click(&entry, "log-entry").await;
            let entry_path = b.path().await;
            let index = entry_path
                .strip_prefix("/log/entries/")
                .unwrap_or_else(|| panic!("a log entry page, not {entry_path}"))
                .to_owned();
            let proof_href = b.find("a#proof").await.attr("href").await.expect("href");
            let proof_path = proof_href
                .as_deref()
                .map(|h| h.trim_start_matches(&a.server))
                .expect("a#proof has an href");
            assert_eq!(proof_path, format!("/v1/log/proofs/{index}"));
            let raw_href = b.find("a#raw").await.attr("href").await.expect("href");
            assert_eq!(
                raw_href.as_deref().map(|h| h.trim_start_matches(&a.server)),
                Some(format!("/log/entries/{index}/raw").as_str())
            );
            let proof = a.dir.join("linked.proof");
            std::fs::write(&proof, http_get(&a.server, proof_path)).expect("writing the proof");
            let verified = run(
                &[
                    "permit",
                    "verify",
                    path_str(&permit),
                    "--jwks",
                    &format!("{}/.well-known/jwks.json", a.server),
                    "--proof",
                    path_str(&proof),
                    "--log-vkey",
                    &a.log_vkey,
                ],
                &a.server,
                "",
            );
            assert!(
                verified.status.success(),
                "the proof linked from the permit's log entry verifies it:\n{}{}",
                String::from_utf8_lossy(&verified.stdout),
                String::from_utf8_lossy(&verified.stderr)
            );

            // The other public pages answer, each with its one heading.
            for (path, name) in [
                ("/decisions", "decisions"),
                ("/log", "log"),
                ("/status", "status-list"),
                ("/orgs", "organizations"),
                ("/verify", "verify"),
            ] {
                b.open(path, name).await;
                assert_eq!(b.status().await, 200, "{path}: {}", b.text().await);
                assert_eq!(b.find_all("h1").await.len(), 1, "{path} has one h1");
            }
            assert!(
                b.text().await.contains(&a.log_vkey) || b.text().await.contains("vkey"),
                "/verify says where the log's key is"
            );

            // At 320 px the registry reads without sideways scrolling of the page.
            b.set_width(320).await;
            b.open("/", "registry-320px").await;
            let (inner, scroll) = b.widths().await;
            assert!(inner <= 340, "the window is {inner} px wide, not 320");
            assert!(
                scroll <= inner,
                "at {inner} px the registry is {scroll} px wide: the page scrolls sideways"
            );
            // The other public pages at 320 px, for people to look at; those wider than the
            // window are named in the test's output.
            for (path, name) in [
                (format!("/permits/{permit_id}"), "permit-320px"),
                (entry_path.clone(), "log-entry-320px"),
                ("/decisions".to_owned(), "decisions-320px"),
                ("/log".to_owned(), "log-320px"),
                ("/status".to_owned(), "status-list-320px"),
                ("/orgs".to_owned(), "organizations-320px"),
                ("/verify".to_owned(), "verify-320px"),
            ] {
                b.open(&path, name).await;
                let (inner, scroll) = b.widths().await;
                if scroll > inner {
                    println!("at {inner} px, {path} is {scroll} px wide");
                }
            }
            b.set_width(WIDTH).await;
        },
    );
}

#[test]
fn public_registry_and_log_in_a_browser() {
    public_pages(false);
}

#[test]
fn public_registry_and_log_in_a_browser_on_postgresql() {
    public_pages(true);
}

// ---------------------------------------------------------------------------------------
// The desk: reviews, a milestone, a revocation

/// The reviewer at `token` signs in, finds `app` in their queue, reads it and approves it
/// (with `condition`, if any); then signs out.
async fn approve(
    b: &mut Browser,
    token: &str,
    who: &str,
    app: &str,
    reason: &str,
    condition: Option<&str>,
) {
    b.sign_in(token, who).await;
    b.open("/console/reviews", &format!("review-queue-{who}"))
        .await;
    let link = b
        .find(&format!(
            "table#review-queue a[href='/console/applications/{app}']"
        ))
        .await;
    b.click(&link, &format!("application-{who}")).await;
    assert_eq!(b.path().await, format!("/console/applications/{app}"));
    let page = b.text().await;
    // The plan laid out, and the compute estimate.
    for needle in [
        "kestrel-2t",
        "600B",
        "B200",
        "SL4",
        "Compute estimate",
        "1.98e26 FLOP",
        "Operation counting",
        "Hardware method",
    ] {
        assert!(
            page.contains(needle),
            "the application page shows {needle}:\n{page}"
        );
    }
    b.choose("form#review select#decision", "approve").await;
    b.fill("form#review textarea#reason", reason).await;
    if let Some(condition) = condition {
        b.fill("form#review textarea#conditions", condition).await;
    }
    b.submit("form#review", &format!("application-approved-by-{who}"))
        .await;
    assert!(b.status().await < 400, "approving: {}", b.text().await);
    // Decided: no longer waiting for this reviewer.
    b.open("/console/reviews", &format!("review-queue-after-{who}"))
        .await;
    assert!(
        b.client
            .find(Locator::Css(&format!(
                "a[href='/console/applications/{app}']"
            )))
            .await
            .is_err(),
        "{who}'s queue no longer lists {app} once decided:\n{}",
        b.text().await
    );
    b.sign_out(&format!("signed-out-{who}")).await;
}

fn desk(postgres: bool) {
    let setup = |a: &mut Authority, database_url: Option<&str>| {
        let people = people(a, database_url);
        // A standard-tier permit (issued at once) whose run the reviewer will revoke, and a
        // full-tier application that waits for two reviewers.
        let standard = standard_permit(a, &people.lab, "desk");
        let app = id_of(&json(
            &[
                "apply",
                path_str(&examples().join("full.toml")),
                "--start",
                "today",
            ],
            a,
            &people.lab,
        ));
        (people, standard, app)
    };
    with_browser(
        "desk",
        postgres,
        setup,
        async |a, b, (people, standard, app)| {
            // 1. Two reviewers approve the full-tier application, the first with a condition.
            approve(
                b,
                &people.rev1,
                "rev1",
                &app,
                "safeguards adequate",
                Some("weekly reports"),
            )
            .await;
            let shown = json(&["applications", "show", &app], a, &people.lab);
            assert_eq!(shown["application"]["status"], "under_review", "{shown}");
            assert_eq!(
                shown["reviews"][0]["conditions"][0], "weekly reports",
                "{shown}"
            );
            approve(b, &people.rev2, "rev2", &app, "agree", None).await;
            let shown = json(&["applications", "show", &app], a, &people.lab);
            assert_eq!(shown["application"]["status"], "approved", "{shown}");
            let permit_id = shown["application"]["permit_id"]
                .as_str()
                .unwrap_or_else(|| panic!("an approved application has a permit: {shown}"))
                .to_owned();
            // The reviewers' decisions went through the API's path: the permit carries the
            // condition the first reviewer typed.
            let permit = json(&["permit", "get", &app], a, &people.lab);
            assert_eq!(
                permit["claims"]["conditions"][0], "weekly reports",
                "{permit}"
            );
            // The permit appears on the public registry, in good standing, with its condition.
            open_registry_listing(b, &permit_id, "registry-after-approval").await;
            assert!(in_good_standing(b, &permit_id).await);
            b.open(&format!("/permits/{permit_id}"), "permit-approved")
                .await;
            let page = b.text().await;
            assert!(
                page.contains("weekly reports") && page.contains("full"),
                "{page}"
            );
            assert!(
                !page.contains("kestrel-2t"),
                "the plan stays confidential: {page}"
            );

            // 2. The evaluator accepts a milestone report: the next tranche is released.
            let full_run = run_of(a, &people.lab, &permit_id);
            let run_id = full_run["id"].as_str().expect("run id").to_owned();
            assert_eq!(full_run["tranche"], 1, "{full_run}");
            // The provider the plan names meters 1.04e25 FLOP in two signed reports: the run
            // reaches its first tranche's end (1e25) and is held for its milestone.
            let nbf = json(&["permit", "get", &app], a, &people.lab)["claims"]["nbf"]
                .as_i64()
                .expect("nbf");
            report_usage(
                a,
                &people.provider,
                &run_id,
                &permit_id,
                1,
                (nbf - 250, nbf),
                4.4e24,
            );
            report_usage(
                a,
                &people.provider,
                &run_id,
                &permit_id,
                2,
                (nbf, nbf + 280),
                6.0e24,
            );
            let started = Instant::now();
            while json(&["run", "show", &run_id], a, &people.lab)["status"] != "milestone_due" {
                assert!(
                    started.elapsed() < Duration::from_secs(30),
                    "the run was not held at its tranche's end"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }

            // The lab sees what is due and submits its milestone report through its run page.
            b.sign_in(&people.lab, "alice").await;
            assert!(
                b.text().await.contains(&run_id),
                "the lab's desk names the run whose milestone is due:\n{}",
                b.text().await
            );
            b.open("/console/applications", "applications-lab").await;
            b.row("table", &app).await;
            b.open(&format!("/console/applications/{app}"), "application-lab")
                .await;
            assert!(
                b.text().await.contains("kestrel-2t"),
                "the lab reads its own plan"
            );
            b.open("/console/runs", "runs-lab").await;
            b.open(&format!("/console/runs/{run_id}"), "run-milestone-due-lab")
                .await;
            b.fill(
                "form#milestone-report input#checkpoint_digest",
                &format!("sha256:{}", "5e".repeat(32)),
            )
            .await;
            b.fill(
                "form#milestone-report textarea#evals",
                r#"{"cyber_uplift": {"score": 0.12, "threshold": 0.5}, "bio_uplift": {"score": 0.03, "threshold": 0.2}}"#,
            )
            .await;
            b.submit("form#milestone-report", "milestone-submitted-lab")
                .await;
            assert!(b.status().await < 400, "reporting: {}", b.text().await);
            let shown = json(&["run", "show", &run_id], a, &people.lab);
            let milestone = shown["milestones"]
                .as_array()
                .and_then(|m| m.iter().find(|m| m["status"] == "submitted"))
                .unwrap_or_else(|| panic!("the report was recorded: {shown}"))["id"]
                .as_str()
                .expect("milestone id")
                .to_owned();
            b.sign_out("signed-out-lab").await;

            // The provider sees the run it meters and its reports.
            b.sign_in(&people.provider.operator, "operator").await;
            b.open("/console/runs", "runs-provider").await;
            b.row("table", &run_id).await;
            b.open("/console/provider", "provider").await;
            assert_eq!(b.status().await, 200, "{}", b.text().await);
            b.sign_out("signed-out-provider").await;

            b.sign_in(&people.evaluator, "eve").await;
            b.open(&format!("/console/runs/{run_id}"), "run-before-milestone")
                .await;
            b.find("svg#run-chart").await;
            let before = b.find_all("svg#run-chart .tranche-line").await.len();
            assert!(before >= 1, "the chart marks the released tranche");
            b.open("/console/milestones", "milestone-queue").await;
            b.row("table#milestone-queue", &run_id).await;
            let form = format!("form#decide-{milestone}");
            b.choose(&format!("{form} select[name=decision]"), "accept")
                .await;
            b.fill(
                &format!("{form} textarea[name=reason]"),
                "dangerous-capability evaluations below thresholds",
            )
            .await;
            b.submit(&form, "milestone-accepted").await;
            assert!(b.status().await < 400, "accepting: {}", b.text().await);
            let after_run = json(&["run", "show", &run_id], a, &people.lab);
            assert_eq!(
                (after_run["status"].as_str(), after_run["tranche"].as_i64()),
                (Some("active"), Some(2)),
                "{after_run}"
            );
            b.open(&format!("/console/runs/{run_id}"), "run-after-milestone")
                .await;
            let after = b.find_all("svg#run-chart .tranche-line").await.len();
            assert_eq!(
                after,
                before + 1,
                "the chart shows the next tranche's boundary once it is released"
            );
            b.sign_out("signed-out-eve").await;

            // 3. A reviewer revokes the standard permit's run; the registry says so.
            let standard_run = run_of(a, &people.lab, &standard);
            let standard_run = standard_run["id"].as_str().expect("run id").to_owned();
            b.sign_in(&people.rev1, "rev1").await;
            b.open("/console/runs", "runs-rev1").await;
            b.open(&format!("/console/runs/{standard_run}"), "run-to-revoke")
                .await;
            b.choose("form#run-action select#action", "revoke").await;
            b.fill(
                "form#run-action textarea#run-reason",
                "weights security audit failed",
            )
            .await;
            b.submit("form#run-action", "run-revoked").await;
            assert!(b.status().await < 400, "revoking: {}", b.text().await);
            let revoked = json(&["run", "show", &standard_run], a, &people.lab);
            assert_eq!(revoked["status"], "revoked", "{revoked}");
            // The registry may be cached for a few seconds: reload until it says so.
            b.open("/", "registry-after-revocation").await;
            let started = Instant::now();
            while in_good_standing(b, &standard).await {
                assert!(
                    started.elapsed() < Duration::from_secs(15),
                    "the registry still shows the revoked permit in good standing"
                );
                tokio::time::sleep(Duration::from_millis(500)).await;
                b.reload("registry-after-revocation").await;
            }
            assert!(
                in_good_standing(b, &permit_id).await,
                "only the revoked run changed"
            );
            // The registry's filter finds the permits not in good standing: only that one.
            b.choose("select#standing", "not").await;
            b.submit("form:has(select#standing)", "registry-not-in-good-standing")
                .await;
            assert!(
                b.path().await.contains("standing=not"),
                "{}",
                b.path().await
            );
            assert!(!in_good_standing(b, &standard).await);
            let rows = b.find_all("table#registry tbody tr").await;
            assert_eq!(rows.len(), 1, "{:#?}", texts(&rows).await);
            b.open(&format!("/permits/{standard}"), "permit-revoked")
                .await;
            assert!(
                b.text().await.contains("not in good standing"),
                "{}",
                b.text().await
            );

            // The other desk pages answer the reviewer.
            for (path, name) in [
                ("/console", "desk-rev1"),
                ("/console/applications", "applications-rev1"),
                ("/console/incidents", "incidents"),
                ("/console/kyc", "kyc"),
            ] {
                b.open(path, name).await;
                assert_eq!(b.status().await, 200, "{path}: {}", b.text().await);
            }
            b.sign_out("signed-out-rev1").await;

            // 4. Refusals.
            // Another lab's applicant cannot read the application by its URL.
            b.sign_in(&people.other_lab, "alice").await;
            b.open(
                &format!("/console/applications/{app}"),
                "other-lab-application",
            )
            .await;
            assert_eq!(b.status().await, 404);
            let page = b.text().await;
            assert!(
                b.h1().await.contains("Not found") && !page.contains("moe_transformer"),
                "{page}"
            );
            b.open(&format!("/console/runs/{run_id}"), "other-lab-run")
                .await;
            assert_eq!(b.status().await, 404, "{}", b.text().await);
            // Error pages are drawn without the person's header: sign out from the desk.
            b.open("/console", "desk-other-lab").await;
            b.sign_out("signed-out-other-lab").await;

            // A form sent without its anti-forgery token is refused, and does nothing.
            b.sign_in(&people.rev1, "rev1").await;
            b.open(&format!("/console/runs/{run_id}"), "run-to-pause")
                .await;
            b.choose("form#run-action select#action", "pause").await;
            b.fill("form#run-action textarea#run-reason", "forged")
                .await;
            b.client
                .execute(
                    "document.querySelector('form#run-action input[name=csrf]').remove();",
                    vec![],
                )
                .await
                .expect("removing the anti-forgery field");
            b.submit("form#run-action", "run-action-without-csrf").await;
            assert_eq!(b.status().await, 403, "{}", b.text().await);
            assert!(b.h1().await.contains("Refused"), "{}", b.text().await);
            let still = json(&["run", "show", &run_id], a, &people.lab);
            assert_eq!(
                still["status"], "active",
                "the forged form did nothing: {still}"
            );

            // A session that was signed out cannot act: a form left open in one tab, signed out
            // in another, is sent to sign in; the old cookie, put back, is refused as well.
            b.open(&format!("/console/runs/{run_id}"), "run-left-open")
                .await;
            b.choose("form#run-action select#action", "pause").await;
            b.fill("form#run-action textarea#run-reason", "after sign-out")
                .await;
            let old_cookie = b
                .client
                .get_named_cookie("runpermit_session")
                .await
                .expect("the session cookie");
            let first = b.client.window().await.expect("this tab");
            let second = b.client.new_window(true).await.expect("a second tab");
            b.client
                .switch_to_window(second.handle)
                .await
                .expect("to the second tab");
            b.open("/console", "desk-second-tab").await;
            b.sign_out("signed-out-second-tab").await;
            b.client.close_window().await.expect("closing the tab");
            b.client
                .switch_to_window(first)
                .await
                .expect("back to the first tab");
            b.submit("form#run-action", "run-action-after-sign-out")
                .await;
            assert!(
                b.path().await.starts_with("/console/sign-in"),
                "a signed-out session is sent to sign in, not {}",
                b.path().await
            );
            b.client
                .add_cookie(old_cookie)
                .await
                .expect("putting the old cookie back");
            b.open(&format!("/console/runs/{run_id}"), "run-with-ended-session")
                .await;
            assert!(
                b.path().await.starts_with("/console/sign-in"),
                "an ended session's cookie is refused, not {}",
                b.path().await
            );
            let still = json(&["run", "show", &run_id], a, &people.lab);
            assert_eq!(
                still["status"], "active",
                "nothing was done after sign-out: {still}"
            );
        },
    );
}

#[test]
fn reviewers_an_evaluator_and_a_revocation_in_a_browser() {
    desk(false);
}

#[test]
fn reviewers_an_evaluator_and_a_revocation_in_a_browser_on_postgresql() {
    desk(true);
}
