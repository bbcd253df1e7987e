//! The `/ui` dashboard over HTTP: login and session cookie, redirects without a
//! session, CSRF on drain, panels fed by real traffic, the CSV download, logout.
//! (The browser tests in `tests/browser` drive the same pages through Chromium.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{hello, start, Gateway, ADMIN_TOKEN};
use reqwest::{redirect, StatusCode};

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(redirect::Policy::none())
        .build()
        .unwrap()
}

fn location(r: &reqwest::Response) -> &str {
    common::header(r, "location")
}

/// Logs in and returns the `Cookie` header value.
async fn login(gw: &Gateway) -> String {
    let r = client()
        .post(format!("{}/ui/login", gw.url))
        .form(&[("token", ADMIN_TOKEN)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/ui");
    let set = common::header(&r, "set-cookie").to_string();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    assert!(
        !set.contains(ADMIN_TOKEN),
        "the token never goes into the cookie"
    );
    set.split(';').next().unwrap().to_string()
}

async fn get(gw: &Gateway, path: &str, cookie: Option<&str>) -> reqwest::Response {
    let mut rb = client().get(format!("{}{path}", gw.url));
    if let Some(c) = cookie {
        rb = rb.header("cookie", c);
    }
    rb.send().await.unwrap()
}

fn csrf_of(html: &str) -> String {
    let at = html.find(r#"name="csrf" value=""#).expect("a csrf field") + 19;
    html[at..at + 64].to_string()
}

#[tokio::test]
async fn without_a_session_every_page_redirects_to_login_and_a_wrong_token_is_refused() {
    let gw = start().await;
    for path in [
        "/ui",
        "/ui/audit",
        "/ui/ledger",
        "/ui/ledger.csv",
        "/ui/panel/traffic",
    ] {
        let r = get(&gw, path, None).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{path}");
        assert_eq!(location(&r), "/ui/login", "{path}");
        let r = get(&gw, path, Some("anycloud_ui=forged")).await;
        assert_eq!(location(&r), "/ui/login", "a made-up session id on {path}");
    }
    let r = client()
        .post(format!("{}/ui/login", gw.url))
        .form(&[("token", "admin-secret-tokeX")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers().get("set-cookie").is_none());
    assert!(r.text().await.unwrap().contains("not the admin token"));
}

#[tokio::test]
async fn panels_show_traffic_and_drain_needs_the_session_csrf_token() {
    let gw = start().await;
    let cookie = login(&gw).await;
    gw.azure.faults().fail_next(1, 503, None);
    for _ in 0..3 {
        assert_eq!(gw.chat(hello("gpt-4o")).await.status(), 200);
    }
    let page = get(&gw, "/ui", Some(&cookie)).await;
    assert_eq!(page.status(), 200);
    assert_eq!(common::header(&page, "cache-control"), "no-store");
    let html = page.text().await.unwrap();
    assert!(!html.contains(ADMIN_TOKEN));
    for panel in [
        "traffic",
        "errors",
        "latency",
        "clouds",
        "scorecard",
        "decisions",
        "spend",
    ] {
        assert!(html.contains(&format!(r#"id="panel-{panel}""#)), "{panel}");
    }
    let decisions = get(&gw, "/ui/panel/decisions", Some(&cookie))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        decisions.contains("azure-us:failed(upstream_503) local-openai:ok"),
        "{decisions}"
    );
    let errors = get(&gw, "/ui/panel/errors", Some(&cookie))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        errors.contains(r#"data-max="1""#),
        "one failed attempt charted"
    );

    let drain = |csrf: String| {
        let (url, cookie) = (gw.url.clone(), cookie.clone());
        async move {
            client()
                .post(format!("{url}/ui/clouds/azure-us/drain"))
                .header("cookie", cookie)
                .form(&[("csrf", csrf)])
                .send()
                .await
                .unwrap()
        }
    };
    let r = drain("0".repeat(64)).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(!gw.state.clouds.is_drained_now("azure-us"));
    let r = drain(csrf_of(&html)).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(gw.state.clouds.is_drained_now("azure-us"));
    let r = gw.chat(hello("gpt-4o")).await;
    assert_eq!(common::header(&r, "x-anycloud-cloud"), "local-openai");
    // Audited like the admin API's drain.
    let audit = get(&gw, "/ui/audit?action=admin.cloud.drain", Some(&cookie)).await;
    let audit = audit.text().await.unwrap();
    assert!(
        audit.contains("admin.cloud.drain") && audit.contains("intact"),
        "{audit}"
    );
}

#[tokio::test]
async fn ledger_csv_downloads_and_logout_ends_the_session() {
    let gw = start().await;
    let cookie = login(&gw).await;
    let r = get(&gw, "/ui/ledger.csv", Some(&cookie)).await;
    assert_eq!(r.status(), 200);
    assert!(common::header(&r, "content-disposition")
        .starts_with("attachment; filename=\"anycloud-ledger-"));
    assert!(common::header(&r, "content-type").starts_with("text/csv"));
    let r = get(&gw, "/ui/ledger.csv?from=2026-02-30", Some(&cookie)).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("`from` must be a date"));

    let logins = get(&gw, "/ui/audit?action=admin.ui.login", Some(&cookie)).await;
    let logins = logins.text().await.unwrap();
    assert_eq!(
        logins.matches("<b>admin.ui.login</b>").count(),
        1,
        "the login is audited"
    );

    let html = get(&gw, "/ui", Some(&cookie)).await.text().await.unwrap();
    let r = client()
        .post(format!("{}/ui/logout", gw.url))
        .header("cookie", &cookie)
        .form(&[("csrf", csrf_of(&html))])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(common::header(&r, "set-cookie").contains("Max-Age=0"));
    assert_eq!(location(&get(&gw, "/ui", Some(&cookie)).await), "/ui/login");
}
