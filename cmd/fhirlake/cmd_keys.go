package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/fhirlake/fhirlake/extract"
	"github.com/fhirlake/fhirlake/internal/atomicfile"
)

type keysOptions struct {
	alg string
	out string
}

func keysCommand() *cli.Command {
	return &cli.Command{
		Name:  "keys",
		Usage: "manage keys for SMART Backend Services (private_key_jwt)",
		Subcommands: []*cli.Command{{
			Name:      "generate",
			Usage:     "write a new private key and the public JWKS to register with a payer",
			UsageText: "fhirlake keys generate --alg ES384 --out DIR",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "alg", Value: extract.ES384, Usage: "ES384 (P-384) or RS384 (RSA 3072)", EnvVars: []string{"FHIRLAKE_KEY_ALG"}},
				&cli.StringFlag{Name: "out", Usage: "directory for private-key.pem (mode 0600) and jwks.json", Required: true},
			},
			OnUsageError: onUsageError,
			Action: func(c *cli.Context) error {
				return runKeysGenerate(c.Context, c, keysOptions{alg: c.String("alg"), out: c.String("out")})
			},
		}},
	}
}

func runKeysGenerate(_ context.Context, c *cli.Context, o keysOptions) error {
	priv, jwks, kid, err := extract.GenerateKey(o.alg)
	if err != nil {
		return usagef("%v", err)
	}
	if err := os.MkdirAll(o.out, 0o700); err != nil {
		return fmt.Errorf("keys: %w", err)
	}
	keyPath := filepath.Join(o.out, "private-key.pem")
	if _, err := os.Stat(keyPath); err == nil {
		return usagef("%s exists: refusing to overwrite a key (remove it first, or pick another --out)", keyPath)
	}
	// atomicfile creates files 0600, which is what a private key needs.
	if err := atomicfile.WriteFile(keyPath, priv); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(o.out, "jwks.json"), jwks); err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "wrote %s (keep it secret) and %s (register it with the payer)\nkid: %s\n",
		keyPath, filepath.Join(o.out, "jwks.json"), kid)
	return nil
}
