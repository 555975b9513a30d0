package web

import (
	"bytes"
	"embed"
	"html/template"
	"io/fs"
	"mime"
	"path"
	"strings"

	"github.com/gofiber/fiber/v2"
)

// The page's files: templates (*.tmpl) rendered by the server, and static
// assets served under /ui/. Plain HTML, CSS and JavaScript: no build step.
//
//go:embed ui
var uiFS embed.FS

var templates = template.Must(template.ParseFS(uiFS, "ui/*.tmpl"))

// loginPage is the data of the login form.
type loginPage struct {
	User    string
	Error   string
	Notice  string
	NoUsers bool
	// Node and Role name the node that serves the form, so that the admin
	// knows which of the pair they log in to.
	Node string
	Role string
}

// appPage is the data of the page.
type appPage struct {
	User string
	CSRF string
	// Viewer: the user may only read; the page disables every write.
	Viewer bool
}

// page serves GET /: the page with a live session, the login form without.
func (s *Server) page(c *fiber.Ctx) error {
	c.Set(fiber.HeaderCacheControl, "no-store")
	if sess := s.sessionOf(c, true); sess != nil {
		return s.render(c, fiber.StatusOK, "index.html.tmpl", appPage{User: sess.user, CSRF: sess.csrf, Viewer: sess.viewer})
	}
	p := loginPage{}
	switch c.Query("m") {
	case "out":
		p.Notice = "You are logged out."
	case "expired":
		p.Notice = "Your session has ended. Log in again."
	}
	if id := c.Cookies(s.auth.cookieName); id != "" && s.auth.sessions.fromEarlierRun(id) {
		p.Notice = s.restartedNotice()
	}
	if c.Cookies(s.auth.cookieName) != "" {
		// A cookie of an ended session: drop it.
		s.clearCookie(c)
	}
	return s.renderLogin(c, fiber.StatusOK, p)
}

func (s *Server) renderLogin(c *fiber.Ctx, code int, p loginPage) error {
	p.NoUsers = len(s.auth.current().hashes) == 0
	if s.node != nil {
		st := s.node.Status()
		p.Node = st.Node
		if st.Role != "" {
			p.Role = strings.ToUpper(st.Role[:1]) + st.Role[1:]
		}
	}
	return s.render(c, code, "login.html.tmpl", p)
}

func (s *Server) render(c *fiber.Ctx, code int, name string, data any) error {
	var b bytes.Buffer
	if err := templates.ExecuteTemplate(&b, name, data); err != nil {
		s.log.Error("rendering the page", "template", name, "err", err)
		return errInternal
	}
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	return c.Status(code).Send(b.Bytes())
}

// assets registers a GET route for each static file of the page, under
// /ui/ (an unknown name is a 404 like any unknown path).
func (s *Server) assets(app *fiber.App) {
	_ = fs.WalkDir(uiFS, "ui", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(p, ".tmpl") {
			return err
		}
		body, err := uiFS.ReadFile(p)
		if err != nil {
			return err
		}
		ctype := mime.TypeByExtension(path.Ext(p))
		if ctype == "" {
			ctype = fiber.MIMEOctetStream
		}
		s.get(app, "/"+p, func(c *fiber.Ctx) error {
			c.Set(fiber.HeaderContentType, ctype)
			// Revalidated each time: a new version of resman serves new
			// assets at once.
			c.Set(fiber.HeaderCacheControl, "no-cache")
			return c.Send(body)
		})
		return nil
	})
}
