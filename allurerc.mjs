// Allure 3's configuration for `locker-harness report --html`: one offline HTML file.
// The harness passes the results folder, the output folder and the report name on the command line,
// and the path of the run's categories.json in LOCKER_HARNESS_ALLURE_CATEGORIES: Allure 3 takes
// categories from its configuration only, and the harness writes them once, into the results.
import { existsSync, readFileSync } from "node:fs";
import { defineConfig } from "allure";

const categoriesFile = process.env.LOCKER_HARNESS_ALLURE_CATEGORIES;
const categories =
  categoriesFile && existsSync(categoriesFile) ? JSON.parse(readFileSync(categoriesFile, "utf8")) : undefined;

export default defineConfig({
  name: "locker-harness",
  ...(categories ? { categories } : {}),
  plugins: {
    awesome: {
      options: {
        singleFile: true,
        reportLanguage: "en",
        theme: "light",
        groupBy: ["parentSuite", "suite"],
        stepTreeExpansion: "expand_failed_only",
      },
    },
  },
});
