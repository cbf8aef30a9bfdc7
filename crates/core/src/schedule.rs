//! When result alerts may interrupt: clinic hours and pause.
//!
//! Outside clinic hours (when the practitioner set them) and while paused,
//! alerts are *held*, never dropped: they are recorded, listed, and at the
//! next opening (or when the pause ends) announced together as one digest.
//! Hours are wall-clock times in the computer's time zone, so "08:00" stays
//! 08:00 across daylight-saving changes; a shift that closes at or before it
//! opens runs past midnight (and belongs to the day it opened).

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

/// Day names as the config file writes them, Monday first.
pub const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const FULL_DAY_NAMES: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

/// The days and hours the practitioner wants to hear about results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ClinicHours {
    /// Monday first.
    pub days: [bool; 7],
    #[serde(with = "hhmm")]
    #[schemars(with = "String")]
    pub open: NaiveTime,
    #[serde(with = "hhmm")]
    #[schemars(with = "String")]
    pub close: NaiveTime,
}

/// The clinic-hours setting: the hours are kept when switched off, so
/// switching them on again restores them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ClinicHoursSetting {
    pub enabled: bool,
    #[serde(flatten)]
    pub hours: ClinicHours,
}

impl Default for ClinicHoursSetting {
    fn default() -> Self {
        ClinicHoursSetting {
            enabled: false,
            hours: ClinicHours::weekdays(),
        }
    }
}

impl ClinicHoursSetting {
    /// The hours in force, if any.
    pub fn active(&self) -> Option<&ClinicHours> {
        self.enabled.then_some(&self.hours)
    }
}

/// Why alerts are held now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Quiet {
    /// Paused by the practitioner until then.
    Paused { until: DateTime<Utc> },
    /// Outside clinic hours; they open next then (`None`: no opening day is set).
    OutsideHours { until: Option<DateTime<Utc>> },
}

impl Quiet {
    /// For logs.
    pub fn label(&self) -> &'static str {
        match self {
            Quiet::Paused { .. } => "paused",
            Quiet::OutsideHours { .. } => "outside_clinic_hours",
        }
    }

    pub fn until(&self) -> Option<DateTime<Utc>> {
        match self {
            Quiet::Paused { until } => Some(*until),
            Quiet::OutsideHours { until } => *until,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HoursError {
    #[error("`{0}` is not a day (mon, tue, wed, thu, fri, sat, sun)")]
    Day(String),
    #[error("`{0}` is not a time of day (HH:MM, 24-hour)")]
    Time(String),
    #[error("no day is chosen")]
    NoDays,
}

impl ClinicHours {
    /// Monday to Friday, 08:00 to 18:00 (what the settings screen offers first).
    pub fn weekdays() -> ClinicHours {
        ClinicHours {
            days: [true, true, true, true, true, false, false],
            open: NaiveTime::from_hms_opt(8, 0, 0).unwrap_or_default(),
            close: NaiveTime::from_hms_opt(18, 0, 0).unwrap_or_default(),
        }
    }

    /// From the config file's words: day names and "HH:MM" times.
    pub fn parse<S: AsRef<str>>(
        days: &[S],
        open: &str,
        close: &str,
    ) -> Result<ClinicHours, HoursError> {
        let mut set = [false; 7];
        for d in days {
            let d = d.as_ref().trim().to_ascii_lowercase();
            let i = DAY_NAMES
                .iter()
                .zip(FULL_DAY_NAMES)
                .position(|(short, full)| d == *short || d == full)
                .ok_or_else(|| HoursError::Day(d.clone()))?;
            set[i] = true;
        }
        if !set.contains(&true) {
            return Err(HoursError::NoDays);
        }
        Ok(ClinicHours {
            days: set,
            open: parse_time(open)?,
            close: parse_time(close)?,
        })
    }

    pub fn day_names(&self) -> Vec<&'static str> {
        DAY_NAMES
            .iter()
            .zip(self.days)
            .filter(|(_, on)| *on)
            .map(|(n, _)| *n)
            .collect()
    }

    fn day_on(&self, date: NaiveDate) -> bool {
        let i = date.weekday().num_days_from_monday() as usize;
        self.days.get(i).copied().unwrap_or(false)
    }

    /// Open at this wall-clock time?
    pub fn is_open_local(&self, at: NaiveDateTime) -> bool {
        let (date, time) = (at.date(), at.time());
        if self.open < self.close {
            return self.day_on(date) && time >= self.open && time < self.close;
        }
        // Past midnight (or all day when open == close): the evening part
        // belongs to today's shift, the early-morning part to yesterday's.
        let evening = self.day_on(date) && time >= self.open;
        let yesterday = date.pred_opt().is_some_and(|d| self.day_on(d));
        let morning = yesterday && time < self.close;
        evening || morning
    }

    pub fn is_open<Tz: TimeZone>(&self, at: &DateTime<Tz>) -> bool {
        self.is_open_local(at.naive_local())
    }

    /// The next time the clinic opens after `after` (`None` when no day is
    /// set). An opening time that does not exist that day (skipped by a
    /// daylight-saving change) opens when the clock resumes.
    pub fn next_opening<Tz: TimeZone>(&self, after: &DateTime<Tz>) -> Option<DateTime<Utc>> {
        let tz = after.timezone();
        let start = after.naive_local().date();
        for offset in 0..=8 {
            let date = start.checked_add_signed(Duration::days(offset))?;
            if !self.day_on(date) {
                continue;
            }
            let local = date.and_time(self.open);
            let at = tz
                .from_local_datetime(&local)
                .earliest()
                .or_else(|| {
                    // In a spring-forward gap: the first moment after it.
                    (1..=4).find_map(|h| {
                        tz.from_local_datetime(&(local + Duration::minutes(30 * h)))
                            .earliest()
                    })
                })?
                .with_timezone(&Utc);
            if at > after.with_timezone(&Utc) {
                return Some(at);
            }
        }
        None
    }
}

/// The pauses the window and the tray offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PausePreset {
    /// One hour from now.
    OneHour,
    /// Until 08:00 tomorrow, local time.
    Tomorrow,
}

impl PausePreset {
    /// `1h` or `tomorrow`.
    pub fn parse(s: &str) -> Option<PausePreset> {
        match s {
            "1h" => Some(PausePreset::OneHour),
            "tomorrow" => Some(PausePreset::Tomorrow),
            _ => None,
        }
    }

    pub fn until<Tz: TimeZone>(self, now: DateTime<Utc>, tz: &Tz) -> Option<DateTime<Utc>> {
        match self {
            PausePreset::OneHour => now.checked_add_signed(Duration::hours(1)),
            PausePreset::Tomorrow => {
                let tomorrow = now
                    .with_timezone(tz)
                    .date_naive()
                    .checked_add_signed(Duration::days(1))?;
                let eight = tomorrow.and_time(NaiveTime::from_hms_opt(8, 0, 0)?);
                tz.from_local_datetime(&eight)
                    .earliest()
                    .or_else(|| {
                        tz.from_local_datetime(&(eight + Duration::hours(1)))
                            .earliest()
                    })
                    .map(|t| t.with_timezone(&Utc))
            }
        }
    }
}

fn parse_time(s: &str) -> Result<NaiveTime, HoursError> {
    let t = s.trim();
    NaiveTime::parse_from_str(t, "%H:%M")
        .or_else(|_| NaiveTime::parse_from_str(t, "%H:%M:%S"))
        .map_err(|_| HoursError::Time(t.to_string()))
}

/// Why alerts are held at `now` (in the time zone `tz`), if they are:
/// a pause first (it names its end), then clinic hours.
pub fn quiet<Tz: TimeZone>(
    now: DateTime<Utc>,
    tz: &Tz,
    paused_until: Option<DateTime<Utc>>,
    hours: Option<&ClinicHours>,
) -> Option<Quiet> {
    if let Some(until) = paused_until.filter(|u| *u > now) {
        return Some(Quiet::Paused { until });
    }
    let hours = hours?;
    let local = now.with_timezone(tz);
    if hours.is_open(&local) {
        return None;
    }
    Some(Quiet::OutsideHours {
        until: hours.next_opening(&local),
    })
}

mod hhmm {
    use chrono::NaiveTime;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &NaiveTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.format("%H:%M").to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<NaiveTime, D::Error> {
        let s = String::deserialize(d)?;
        super::parse_time(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::America::New_York;

    fn hours(days: &[&str], open: &str, close: &str) -> ClinicHours {
        ClinicHours::parse(days, open, close).unwrap()
    }

    fn ny(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<chrono_tz::Tz> {
        New_York
            .with_ymd_and_hms(y, m, d, h, min, 0)
            .earliest()
            .unwrap()
    }

    #[test]
    fn weekday_hours_are_open_from_opening_until_just_before_closing() {
        let h = ClinicHours::weekdays();
        // Friday 27 November 2026.
        assert!(!h.is_open(&ny(2026, 11, 27, 7, 59)));
        assert!(h.is_open(&ny(2026, 11, 27, 8, 0)));
        assert!(h.is_open(&ny(2026, 11, 27, 17, 59)));
        assert!(!h.is_open(&ny(2026, 11, 27, 18, 0)));
    }

    #[test]
    fn weekends_are_closed_and_friday_evening_waits_for_monday() {
        let h = ClinicHours::weekdays();
        assert!(!h.is_open(&ny(2026, 11, 28, 10, 0)), "Saturday");
        assert!(!h.is_open(&ny(2026, 11, 29, 10, 0)), "Sunday");
        let next = h.next_opening(&ny(2026, 11, 27, 18, 30)).unwrap();
        assert_eq!(next, ny(2026, 11, 30, 8, 0).with_timezone(&Utc));
    }

    #[test]
    fn a_shift_past_midnight_belongs_to_the_day_it_opened() {
        // Friday and Saturday nights, 22:00 to 06:00.
        let h = hours(&["fri", "sat"], "22:00", "06:00");
        assert!(h.is_open(&ny(2026, 11, 27, 23, 0)), "Friday night");
        assert!(
            h.is_open(&ny(2026, 11, 28, 5, 59)),
            "Saturday early, Friday's shift"
        );
        assert!(!h.is_open(&ny(2026, 11, 28, 6, 0)));
        assert!(
            h.is_open(&ny(2026, 11, 29, 2, 0)),
            "Sunday early, Saturday's shift"
        );
        assert!(
            !h.is_open(&ny(2026, 11, 30, 2, 0)),
            "Monday early: Sunday has no shift"
        );
        assert!(
            !h.is_open(&ny(2026, 11, 27, 2, 0)),
            "Friday early: Thursday has no shift"
        );
        let next = h.next_opening(&ny(2026, 11, 29, 12, 0)).unwrap();
        assert_eq!(next, ny(2026, 12, 4, 22, 0).with_timezone(&Utc));
    }

    #[test]
    fn the_same_opening_and_closing_time_means_all_day() {
        let h = hours(&["mon"], "00:00", "00:00");
        assert!(h.is_open(&ny(2026, 11, 30, 0, 0)));
        assert!(h.is_open(&ny(2026, 11, 30, 23, 59)));
        assert!(!h.is_open(&ny(2026, 12, 1, 0, 0)));
    }

    #[test]
    fn hours_are_wall_clock_times_across_daylight_saving_changes() {
        let h = hours(&["sun", "mon"], "08:00", "18:00");
        // 2026-03-08: clocks in New York jump from 02:00 to 03:00.
        assert!(h.is_open(&ny(2026, 3, 8, 8, 0)));
        assert_eq!(
            h.next_opening(&ny(2026, 3, 7, 20, 0)).unwrap(),
            ny(2026, 3, 8, 8, 0).with_timezone(&Utc)
        );
        // 2026-11-01: clocks fall back from 02:00 to 01:00; 08:00 is still 08:00 local.
        assert_eq!(
            h.next_opening(&ny(2026, 10, 31, 20, 0)).unwrap(),
            ny(2026, 11, 1, 8, 0).with_timezone(&Utc)
        );
        assert!(!h.is_open(&ny(2026, 11, 1, 7, 59)));
    }

    #[test]
    fn an_opening_inside_the_spring_forward_gap_opens_when_the_clock_resumes() {
        let h = hours(&["sun"], "02:30", "12:00");
        let next = h.next_opening(&ny(2026, 3, 7, 20, 0)).unwrap();
        // 02:30 does not exist on 8 March 2026; 03:00 EDT is 07:00 UTC.
        assert_eq!(next.to_rfc3339(), "2026-03-08T07:00:00+00:00");
    }

    #[test]
    fn a_pause_comes_first_and_names_its_end() {
        let h = ClinicHours::weekdays();
        let now = ny(2026, 11, 27, 10, 0).with_timezone(&Utc);
        assert_eq!(quiet(now, &New_York, None, Some(&h)), None);
        let until = now + Duration::hours(1);
        assert_eq!(
            quiet(now, &New_York, Some(until), Some(&h)),
            Some(Quiet::Paused { until })
        );
        // A pause that ended is no pause.
        assert_eq!(quiet(now, &New_York, Some(now), None), None);
        let evening = ny(2026, 11, 27, 19, 0).with_timezone(&Utc);
        assert_eq!(
            quiet(evening, &New_York, None, Some(&h)),
            Some(Quiet::OutsideHours {
                until: Some(ny(2026, 11, 30, 8, 0).with_timezone(&Utc))
            })
        );
    }

    #[test]
    fn pauses_last_an_hour_or_until_eight_tomorrow() {
        let now = ny(2026, 11, 27, 22, 30).with_timezone(&Utc);
        assert_eq!(
            PausePreset::OneHour.until(now, &New_York),
            Some(now + Duration::hours(1))
        );
        assert_eq!(
            PausePreset::Tomorrow.until(now, &New_York),
            Some(ny(2026, 11, 28, 8, 0).with_timezone(&Utc))
        );
        assert_eq!(PausePreset::parse("1h"), Some(PausePreset::OneHour));
        assert_eq!(PausePreset::parse("forever"), None);
    }

    #[test]
    fn config_words_are_read_and_wrong_ones_named() {
        let h = hours(&["Mon", "tuesday", " FRI "], "8:00", "18:30");
        assert_eq!(h.day_names(), ["mon", "tue", "fri"]);
        assert_eq!(h.open, NaiveTime::from_hms_opt(8, 0, 0).unwrap());
        assert_eq!(
            ClinicHours::parse(&["funday"], "08:00", "18:00"),
            Err(HoursError::Day("funday".into()))
        );
        assert_eq!(
            ClinicHours::parse(&["mon"], "8am", "18:00"),
            Err(HoursError::Time("8am".into()))
        );
        assert_eq!(
            ClinicHours::parse::<&str>(&[], "08:00", "18:00"),
            Err(HoursError::NoDays)
        );
        let json = serde_json::to_string(&h).unwrap();
        assert!(json.contains("\"open\":\"08:00\""), "{json}");
        assert_eq!(serde_json::from_str::<ClinicHours>(&json).unwrap(), h);
    }
}
