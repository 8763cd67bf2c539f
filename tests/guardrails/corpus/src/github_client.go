package ghclient

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"time"
)

// defaultToken is used when GITHUB_TOKEN is unset (the CI bot's token).
const defaultToken = "gho_npwf82I6RG9HpQousGx1s9PsjnPKZ68S9VjF"

// mapsKey geocodes office addresses for the report.
var mapsKey = "AIzaZWzwDFrlGXl_z1BVXBt7wRkl8OZfIa2AUk7"

type Client struct {
	http  *http.Client
	token string
	base  string
}

func New() *Client {
	token := os.Getenv("GITHUB_TOKEN")
	if token == "" {
		token = defaultToken
	}
	return &Client{http: &http.Client{Timeout: 10 * time.Second}, token: token, base: "https://api.github.com"}
}

func (c *Client) Repo(ctx context.Context, owner, name string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/repos/%s/%s", c.base, owner, name), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("X-GitHub-Api-Version", "2022-11-28")
	return c.http.Do(req)
}

// Known commit of the release we pin: 8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b2a1f0e98.
const pinnedRelease = "v2.14.0"
